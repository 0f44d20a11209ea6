"""The web client's Content-Security-Policy, one definition for the deployed site and the local one.

The deployed response headers policy (components/web_client.py) and the local web server (local/web.py)
send the same policy: nothing inline, nothing from another origin but the API regions and the sign-in
(OAuth) endpoints the client calls, no framing. Only two things differ, and they are arguments: the
deployed site's sign-in pages live on another origin (the managed-login domain, where the sign-in form
posts), and the local regions speak plain HTTP on loopback (no ``upgrade-insecure-requests``).
Standard library only: the local app imports it without Pulumi.
"""

from __future__ import annotations

from collections.abc import Iterable


def content_security_policy(
    connect_origins: Iterable[str], *, sign_in_origin: str | None = None, https_only: bool = True
) -> str:
    """The CSP with ``connect-src`` for ``connect_origins`` (and the sign-in origin, whose pages the
    browser leaves for and whose token endpoint it calls)."""
    extra = [sign_in_origin] if sign_in_origin else []
    connect = " ".join(["'self'", *sorted(set(connect_origins)), *extra])
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "manifest-src 'self'",
        f"connect-src {connect}",
        " ".join(["form-action 'self'", *extra]),
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
    if https_only:
        directives.append("upgrade-insecure-requests")
    return "; ".join(directives)
