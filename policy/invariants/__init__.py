"""The stack's security invariants as Pulumi policies, one module per invariant family."""

from pulumi_policy import Policy

from .api_auth import API_AUTHORIZER
from .boundary import ROLES_CARRY_BOUNDARY
from .iam import NO_ADMIN_CONNECT_FOR_FUNCTIONS, NO_DSQL_ON_EVERY_RESOURCE
from .logs import LOG_RETENTION
from .protection import DELETION_PROTECTION
from .tls import REST_API_DEFAULT_ENDPOINT_TLS, TLS_ONLY

PACK_NAME = "dsql-users-api-security"
POLICIES: list[Policy] = [
    NO_DSQL_ON_EVERY_RESOURCE,
    NO_ADMIN_CONNECT_FOR_FUNCTIONS,
    DELETION_PROTECTION,
    API_AUTHORIZER,
    LOG_RETENTION,
    TLS_ONLY,
    REST_API_DEFAULT_ENDPOINT_TLS,
    ROLES_CARRY_BOUNDARY,
]
