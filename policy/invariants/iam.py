"""IAM invariants: no dsql action on every resource, and no admin database login for a function.

``dsql`` actions all support resource-level permissions (a cluster ARN), so ``"*"`` is never needed;
and ``dsql:DbConnectAdmin`` logs in as the database's ``admin`` role, which only the deploying identity
(outside the stack, running the migrations and role grants) may use. Functions connect as their own
least-privilege database role with ``dsql:DbConnect`` on their region's cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .iam_documents import (
    ADMIN_CONNECT,
    Statement,
    broad_managed_policy,
    dsql_grants,
    grants,
    on_every_resource,
    statements,
    trusts_lambda,
)
from .props import DocumentError, items, mapping

ROLE = "aws:iam/role:Role"
FUNCTION = "aws:lambda/function:Function"
MANAGED_POLICY = "aws:iam/policy:Policy"
# Resources whose `policy` property is a policy document.
DOCUMENT_TYPES = (
    "aws:iam/rolePolicy:RolePolicy",
    MANAGED_POLICY,
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
ROLE_POLICY = DOCUMENT_TYPES[0]
# Resources that attach a managed policy by ARN (`policyArn`) to a role, user or group.
ATTACHMENT_TYPES = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
# The attachments that can name a role, and the property that does.
ROLE_KEYS_OF_ATTACHMENTS = {ATTACHMENT_TYPES[0]: "role", ATTACHMENT_TYPES[3]: "roles"}
SCOPE_FIX = (
    "scope each dsql action to the cluster ARNs it needs "
    "(arn:<partition>:dsql:<region>:<account>:cluster/<cluster id>) or remove it"
)


def kind(resource_type: str) -> str:
    """``aws:iam/rolePolicy:RolePolicy`` -> ``RolePolicy``: how messages name a resource's type."""
    return resource_type.rsplit(":", 1)[-1]


def documents(resource_type: str, props: Any) -> Iterator[tuple[str, Any]]:
    """(where, document) for every policy document a resource declares."""
    if resource_type in DOCUMENT_TYPES and props.get("policy") is not None:
        yield "policy", props.get("policy")
    if resource_type == ROLE:
        for index, inline in enumerate(items(props.get("inlinePolicies")), start=1):
            inline = mapping(inline)
            if inline.get("policy") is not None:  # an empty block only says "manage inline policies"
                yield f"inline policy {inline.get('name') or index!r}", inline.get("policy")


def managed_policy_arns(resource_type: str, props: Any) -> list[Any]:
    """The managed policy ARNs a resource attaches (attachments, and a role's ``managedPolicyArns``)."""
    if resource_type in ATTACHMENT_TYPES:
        return [props.get("policyArn")]
    if resource_type == ROLE:
        return items(props.get("managedPolicyArns"))
    return []


# --- no dsql action on every resource


def check_no_dsql_on_every_resource(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    subject = f"{kind(args.resource_type)} '{args.name}'"
    for where, document in documents(args.resource_type, args.props):
        try:
            found = statements(document, f"its {where}")
        except DocumentError as error:
            report_violation(
                f"{subject}: {error}, so it cannot be checked; pass the document as JSON text "
                "(json.dumps of a dict) or as an aws.iam.PolicyDocument object",
                None,
            )
            continue
        for statement in found:
            granted = dsql_grants(statement)
            if granted and on_every_resource(statement):
                report_violation(
                    f"{subject}: {where} {statement.label} allows {', '.join(granted)} on every "
                    f'resource ("*"); {SCOPE_FIX}',
                    None,
                )
    for arn in managed_policy_arns(args.resource_type, args.props):
        name = broad_managed_policy(arn)
        if name:
            report_violation(
                f"{subject}: attaches the AWS managed policy {name}, which allows dsql actions on "
                f"every resource; attach a policy of your own instead and {SCOPE_FIX}",
                None,
            )


NO_DSQL_ON_EVERY_RESOURCE = ResourceValidationPolicy(
    name="no-dsql-action-on-every-resource",
    description=(
        'No IAM policy allows a dsql action (dsql:*, dsql:DbConnect, "*"...) on Resource "*": every dsql '
        "action takes a cluster ARN."
    ),
    validate=check_no_dsql_on_every_resource,
    remediation_steps=f"In the policy document, {SCOPE_FIX}.",
)


# --- no DbConnectAdmin for a function's role


def _refers_to(resource: PolicyResource, key: str, target: PolicyResource) -> bool:
    """Whether ``resource``'s property ``key`` names ``target``.

    The engine's property dependencies say it exactly when the value came from ``target``'s outputs;
    only a property without one (a name written out as text) is compared by value with the target's
    name and ARN, so that preview-time unknowns of unrelated resources are never read.
    """
    dependencies = resource.property_dependencies.get(key)
    if dependencies:
        return any(dependency.urn == target.urn for dependency in dependencies)
    values = items(resource.props.get(key))
    if not values:
        return False
    identifiers = {target.props.get("name"), target.props.get("arn")} - {None}
    return any(value in identifiers for value in values)


def function_roles(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """Roles a Lambda function runs as: trusted by the Lambda service, or named by a function."""
    functions = [resource for resource in resources if resource.resource_type == FUNCTION]
    return [
        role
        for role in resources
        if role.resource_type == ROLE
        and (
            trusts_lambda(role.props.get("assumeRolePolicy"))
            or any(_refers_to(function, "role", role) for function in functions)
        )
    ]


def _admin_grants(
    source: PolicyResource, where: str, document: Any
) -> Iterator[tuple[PolicyResource, str, Statement | None]]:
    try:
        found = statements(document, where)
    except DocumentError:
        return  # no-dsql-action-on-every-resource reports an unreadable document
    for statement in found:
        if grants(statement, ADMIN_CONNECT):
            yield source, where, statement


def _grants_to(
    role: PolicyResource, resources: Sequence[PolicyResource]
) -> Iterator[tuple[PolicyResource, str, Statement | None]]:
    """(resource, where, statement) for every grant of DbConnectAdmin that reaches ``role``."""
    managed = [resource for resource in resources if resource.resource_type == MANAGED_POLICY]

    def attached(source: PolicyResource, key: str) -> Iterator[tuple[PolicyResource, str, Statement | None]]:
        """Grants of the managed policies ``source`` attaches through its property ``key``."""
        for arn in items(source.props.get(key)):
            name = broad_managed_policy(arn)
            if name:
                yield source, f"the AWS managed policy {name}", None
        for policy in managed:
            if _refers_to(source, key, policy):
                yield from _admin_grants(
                    source, f"managed policy '{policy.name}'", policy.props.get("policy")
                )

    for where, document in documents(ROLE, role.props):
        yield from _admin_grants(role, where, document)
    yield from attached(role, "managedPolicyArns")
    for resource in resources:
        if resource.resource_type == ROLE_POLICY and _refers_to(resource, "role", role):
            yield from _admin_grants(resource, "policy", resource.props.get("policy"))
        role_key = ROLE_KEYS_OF_ATTACHMENTS.get(resource.resource_type)
        if role_key and _refers_to(resource, role_key, role):
            yield from attached(resource, "policyArn")


def check_no_admin_connect_for_functions(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for role in function_roles(args.resources):
        for source, where, statement in _grants_to(role, args.resources):
            how = f"{where} {statement.label}" if statement else where
            via = "" if source is role else f" through {kind(source.resource_type)} '{source.name}'"
            report_violation(
                f"Lambda function role '{role.name}' is granted {ADMIN_CONNECT} by {how}{via}; a function "
                "connects as its own database role with dsql:DbConnect on its cluster's ARN: remove "
                f"{ADMIN_CONNECT} (only the deploying identity connects as admin)",
                source.urn,
            )


NO_ADMIN_CONNECT_FOR_FUNCTIONS = StackValidationPolicy(
    name="no-dsql-admin-connect-for-functions",
    description=(
        f"No role a Lambda function runs as is granted {ADMIN_CONNECT}: functions log in as their own "
        "least-privilege database role; only the deploying identity connects as admin."
    ),
    validate=check_no_admin_connect_for_functions,
    remediation_steps=f"Grant the function's role dsql:DbConnect on its cluster's ARN, never {ADMIN_CONNECT}.",
)
