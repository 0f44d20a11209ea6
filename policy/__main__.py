"""Entry point the policy host runs (``python -m pulumi.policy`` in this folder): serves the pack.

Every policy is mandatory unless it says otherwise (one advisory report); a stack's policy config file
(``--policy-pack-config``) may lower a level, as ``config/dev.json`` does for deletion protection.
"""

from invariants import PACK_NAME, POLICIES  # this folder is sys.path[0] under the policy host
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Security invariants of the dsql-users-api stack: IAM, deletion protection, authorizers, logs, TLS.",
)
