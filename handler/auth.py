"""Who is calling, built in one place from the claims API Gateway's Cognito authorizer verified.

The handler never reads the Authorization header and never decodes a token. On AWS the REST API's
``COGNITO_USER_POOLS`` authorizer checks the ID token (signature, expiry, issuing pool, ``token_use``)
before the function runs and passes its claims in ``requestContext.authorizer.claims``, every value a
string: ``email_verified`` as ``"true"``/``"false"``, and the token's ``cognito:groups`` array as its
names joined by a bare comma (``["editors", "admins"]`` arrives as ``"editors,admins"``, one group as
just its name). Locally ``local/auth.py`` plays the authorizer and puts the claims in the same place,
the same way. The handler trusts those claims and nothing else in the request.

Group names are exact: no trimming, no case folding. Because Cognito lets a group's name contain a
comma (botocore ``GroupNameType``), ``"x,admins"`` may be the two groups ``x`` and ``admins`` or the
one group ``x,admins``, and the claim alone cannot tell which. So a joined list of several names is
ambiguous and grants no group at all (logged as a warning): only a claim naming exactly one group
(``"admins"``) makes its holder a member. Keep administrators in the ``admins`` group alone
(docs/handler.md). The token's own JSON array form, should a claim ever arrive as a list, is exact.

``AUTH_MODE`` (handler/config.py):

* ``cognito`` (the default): a request to /users without claims is a routing or deployment bug (a
  method without the authorizer), never an anonymous caller: 401.
* ``none``: the stack's explicit demo opt-out, with no authorizer. Every caller is one anonymous
  administrator: list, read, create, change and delete any user; created users belong to no one;
  ``/users/me`` answers 401 (there is no "me"). Exactly what the API allowed before authentication.

What the claims decide is in users.py (the rules) and docs/handler.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from handler import logs
from handler.config import Settings
from handler.errors import Forbidden, Unauthorized
from handler.validation import normalise_email

ADMINS_GROUP = "admins"
GROUP_SEPARATOR = ","  # how API Gateway's REST Cognito authorizer joins the cognito:groups array
SUB_MAX = 255  # a Cognito sub is a 36-character UUID; the local issuer takes any sub up to this


class Caller(NamedTuple):
    """The verified identity behind one request."""

    sub: str | None
    """The token's ``sub``: the owner key of the caller's profile. None only with AUTH_MODE=none."""
    email: str | None
    """The token's email in canonical form, only when the user pool marked it verified."""
    is_admin: bool
    """Member of the ``admins`` group (or anyone with AUTH_MODE=none)."""


ANONYMOUS_ADMIN = Caller(sub=None, email=None, is_admin=True)


def caller_from_event(event: dict[str, Any], settings: Settings) -> Caller:
    """The caller of this API Gateway event; raises Unauthorized when it carries no usable identity."""
    if settings.auth_mode == "none":
        return ANONYMOUS_ADMIN
    context = event.get("requestContext") or {}
    claims = (context.get("authorizer") or {}).get("claims")
    if not isinstance(claims, dict) or not claims:
        raise Unauthorized(
            "no verified identity reached the function: every /users method must use the Cognito "
            "authorizer; send an ID token as Authorization: Bearer <token>"
        )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > SUB_MAX:
        raise Unauthorized("the token has no usable sub claim")
    kind = claims.get("token_use")
    if kind != "id":
        raise Unauthorized(f"send a Cognito ID token (token_use id), not token_use {kind!r}")
    if settings.auth_client_ids and claims.get("aud") not in settings.auth_client_ids:
        # API Gateway's Cognito authorizer accepts a token of any app client of the pool.
        raise Unauthorized("the token was issued to an app client this API does not accept")
    return Caller(sub=sub, email=_verified_email(claims), is_admin=ADMINS_GROUP in _groups(claims))


def _groups(claims: dict[str, Any]) -> frozenset[str]:
    """The caller's groups, exactly as named; none at all when the claim cannot be read one way only."""
    groups = claims.get("cognito:groups")
    if groups is None or groups == "":
        return frozenset()
    if isinstance(groups, list) and all(isinstance(group, str) for group in groups):
        return frozenset(groups)  # the token's own JSON array: every name is whole
    if isinstance(groups, str) and GROUP_SEPARATOR not in groups:
        return frozenset((groups,))
    # Several joined names (or a name with a comma in it): the split is a guess, and a guess must never
    # make anyone an administrator. Logged so that an operator sees who lost a group, and why.
    logs.warning(
        "cognito:groups claim is ambiguous and grants no group: a comma joins the names, and a group "
        "name may contain a comma; keep members of admins in no other group",
        sub=str(claims.get("sub"))[:64],
        groups=str(groups)[:256],
    )
    return frozenset()


def _verified_email(claims: dict[str, Any]) -> str | None:
    """Only a verified address counts: an unverified one could be anybody's.

    Verified means exactly what Cognito and API Gateway write: the JSON ``true`` of the token, or the
    ``"true"`` string of the authorizer's claims. ``"True"``, ``"TRUE"``, ``["true"]`` or ``1`` come from
    neither, so they count as unverified.
    """
    verified = claims.get("email_verified")
    if verified is not True and verified != "true":
        return None
    email = claims.get("email")
    if not isinstance(email, str):
        return None
    canonical, problem = normalise_email(email)
    return None if problem else canonical


def owner_sub(caller: Caller) -> str:
    """The caller's sub, for statements on the caller's own profile."""
    if caller.sub is None:
        raise Unauthorized(
            "/users/me needs a signed-in caller; this API runs with AUTH_MODE=none, where every caller "
            "is anonymous: use /users and /users/{id}"
        )
    return caller.sub


def writable_email(caller: Caller, email: str | None) -> str | None:
    """The email this caller may write on their own profile: an admin any, anyone else their own.

    A non-admin's profile always carries the verified email of their sign-in, so nobody can claim an
    address they do not control (or learn, through a 409, that someone registered it). The value
    returned is the token's, not the request's, so the statement writes what the token proves.
    """
    if caller.is_admin or email is None:
        return email
    if caller.email is None:
        raise Forbidden(
            "your sign-in has no verified email, and a profile's email must be it: verify the address "
            "in the user pool, sign in again, then retry",
            fields={"email": "must be your verified sign-in email"},
        )
    if email != caller.email:
        raise Forbidden(
            "a profile's email must be the verified email you signed in with",
            fields={"email": f"must be {caller.email}"},
        )
    return caller.email
