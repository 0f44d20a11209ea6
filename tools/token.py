"""An ID token of a real user of a deployed stack, for curl and scripts.

    python -m tools.token --from-stack [--stack prod]                          # sign in in the browser
    python -m tools.token --from-stack --srp --username ann@example.com        # no browser: SRP

Browser (the default, the way ``gh auth login`` works; RFC 8252 for native apps): the tool listens on
a loopback port, opens managed login (the stack's ``authDomain``) with the authorization-code flow and
PKCE (RFC 7636, S256), receives the code on ``http://localhost:<port>/callback`` (Cognito accepts plain
HTTP for ``localhost`` only, and matches each port exactly, so the web client lists the few ports of
``CLI_CALLBACK_PORTS``), checks ``state``, and exchanges the code and its verifier at the token
endpoint. No secret is involved: the verifier never leaves this process until that exchange.

SRP (``--srp``, where no browser exists): Cognito's Secure Remote Password sign-in with pycognito
against the stack's public client; the password is prompted for (or read from stdin with
``--password-stdin``) and never sent, only a proof of it.

The token is printed on stdout, alone, so ``TOKEN=$(python -m tools.token --from-stack)`` works;
every message goes to stderr. Exit status: 0 with a token, 2 for a usage or sign-in problem.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import hashlib
import html
import http.server
import json
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.identity import CALLBACK_PATH, CLI_CALLBACK_PORTS, OAUTH_SCOPES
from tools.smoke import UsageError, stack_outputs

AUTH_DOMAIN_OUTPUT = "authDomain"
WEB_CLIENT_ID_OUTPUT = "webClientId"
USER_POOL_ID_OUTPUT = "userPoolId"
PUBLIC_CLIENT_ID_OUTPUT = "userPoolClientId"
USER_POOL_ARNS_OUTPUT = "userPoolArns"  # with authReplica: the pool ARN of each region
DEFAULT_TIMEOUT_SECONDS = 300.0


class TokenError(Exception):
    """Signing in did not produce a token; the message says why and what to do."""


class CognitoUnreachable(TokenError):
    """Cognito's endpoint in one region could not be reached: another region's replica may answer."""


@dataclass(frozen=True)
class StackSignIn:
    """What the stack's outputs say about signing in."""

    auth_domain: str | None
    web_client_id: str | None
    user_pool_id: str | None
    public_client_id: str | None
    replica_regions: tuple[str, ...] = ()
    """Regions other than the pool's own where a replica signs users in (authReplica)."""

    @property
    def region(self) -> str:
        return (self.user_pool_id or "").partition("_")[0]

    @property
    def regions(self) -> tuple[str, ...]:
        """Where SRP sign-in can go: the pool's own region first, then its replicas."""
        return (self.region, *(r for r in self.replica_regions if r != self.region))


def sign_in_from_outputs(outputs: Mapping[str, Any]) -> StackSignIn:
    """The managed-login domain and clients named by ``pulumi stack output --json``."""
    if not outputs.get(USER_POOL_ID_OUTPUT):
        raise TokenError(
            "the stack has no user pool (deployed with authMode none?): its API takes no token; "
            "`pulumi config set authMode cognito` and `pulumi up` to add one"
        )

    def text(key: str) -> str | None:
        value = outputs.get(key)
        return str(value) if value else None

    arns = outputs.get(USER_POOL_ARNS_OUTPUT)
    return StackSignIn(
        text(AUTH_DOMAIN_OUTPUT),
        text(WEB_CLIENT_ID_OUTPUT),
        text(USER_POOL_ID_OUTPUT),
        text(PUBLIC_CLIENT_ID_OUTPUT),
        tuple(sorted(arns)) if isinstance(arns, Mapping) else (),
    )


# ----------------------------------------------------------------- authorization code + PKCE on loopback


def pkce_pair() -> tuple[str, str]:
    """A code verifier (64 random bytes, base64url: 86 characters of the unreserved set) and its S256
    challenge, as RFC 7636 section 4 describes."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class _Callback:
    """What arrived on the loopback redirect."""

    params: dict[str, str] | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _handler(callback: _Callback) -> type[http.server.BaseHTTPRequestHandler]:
    class LoopbackHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != CALLBACK_PATH:
                self.send_error(404, "only the sign-in redirect is served here")
                return
            params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            ok = "code" in params
            message = (
                "Signed in. You can close this tab and return to the terminal."
                if ok
                else f"Sign-in failed: {html.escape(params.get('error_description') or params.get('error') or '?')}"
            )
            body = f"<!doctype html><title>tools.token</title><p>{message}</p>".encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            if callback.params is None:
                callback.params = params
                callback.done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the terminal shows the tool's own messages only

    return LoopbackHandler


@contextlib.contextmanager
def loopback_listener(ports: Sequence[int]) -> Iterator[tuple[int, _Callback]]:
    """Listen on 127.0.0.1 at the first free port of ``ports``; yields it and what arrives."""
    callback = _Callback()
    server = None
    for port in ports:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(callback))
            break
        except OSError:
            continue
    if server is None:
        raise TokenError(
            f"loopback ports {', '.join(map(str, ports))} are all in use (the web client allows only these "
            "redirects); free one of them, or sign in with --srp"
        )
    thread = threading.Thread(target=server.serve_forever, name="tools.token-loopback", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], callback
    finally:
        server.shutdown()
        server.server_close()


def authorize_url(
    auth_base: str, client_id: str, redirect_uri: str, state: str, challenge: str, scopes: Sequence[str]
) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        quote_via=urllib.parse.quote,
    )
    return f"{auth_base}/oauth2/authorize?{query}"


def exchange_code(
    auth_base: str, client_id: str, code: str, redirect_uri: str, verifier: str
) -> dict[str, Any]:
    """POST the code and its verifier to the token endpoint; its JSON answer (id_token etc.)."""
    data = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
    ).encode()
    if not auth_base.startswith(("https://", "http://127.0.0.1:")):
        raise TokenError(f"the sign-in domain must be an https:// address, not {auth_base!r}")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        f"{auth_base}/oauth2/token",
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (checked above)
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as problem:
        detail = problem.read().decode(errors="replace")[:300]
        raise TokenError(f"the token endpoint refused the code ({problem.code}): {detail}") from None
    except (urllib.error.URLError, TimeoutError) as problem:
        raise TokenError(f"the token endpoint {auth_base}/oauth2/token did not answer: {problem}") from None


def browser_sign_in(
    auth_base: str,
    client_id: str,
    *,
    ports: Sequence[int] = CLI_CALLBACK_PORTS,
    open_browser: Callable[[str], object] = webbrowser.open,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    say: Callable[[str], object] = lambda line: print(line, file=sys.stderr),
) -> dict[str, Any]:
    """Managed login in the browser, the code back on loopback, exchanged with PKCE; the token answer."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    with loopback_listener(ports) as (port, callback):
        redirect_uri = f"http://localhost:{port}{CALLBACK_PATH}"
        url = authorize_url(auth_base, client_id, redirect_uri, state, challenge, OAUTH_SCOPES)
        say(f"Sign in in your browser; if it did not open, open this address:\n  {url}")
        open_browser(url)
        if not callback.done.wait(timeout):
            raise TokenError(f"no sign-in came back within {timeout:.0f} s; run the command again")
    params = callback.params or {}
    if "error" in params:
        raise TokenError(
            f"managed login answered {params['error']}: {params.get('error_description', 'no description')}"
        )
    if not secrets.compare_digest(params.get("state", ""), state):
        raise TokenError("the redirect's state does not match this sign-in (another tab?); run it again")
    if not params.get("code"):
        raise TokenError("the redirect carried no authorization code; run the command again")
    return exchange_code(auth_base, client_id, params["code"], redirect_uri, verifier)


# ----------------------------------------------------------------- SRP, where no browser exists


def srp_sign_in(
    user_pool_id: str,
    client_id: str,
    username: str,
    password: str,
    cognito: Any = None,
    region: str | None = None,
) -> str:
    """An ID token through Cognito's USER_SRP_AUTH (pycognito computes the proof; the password is not
    sent). ``cognito`` is a cognito-idp client (default: an unsigned one of ``region``, by default the
    pool's own region; with authReplica a replica region signs in the same users with the same pool ID)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pycognito.aws_srp import AWSSRP
    from pycognito.exceptions import ForceChangePasswordException, SoftwareTokenMFAChallengeException

    if cognito is None:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        # InitiateAuth and RespondToAuthChallenge are unauthenticated calls of a public client.
        cognito = boto3.client(
            "cognito-idp",
            region_name=region or user_pool_id.partition("_")[0],
            config=Config(signature_version=UNSIGNED),
        )
    srp = AWSSRP(
        username=username, password=password, pool_id=user_pool_id, client_id=client_id, client=cognito
    )
    try:
        answer = srp.authenticate_user()
    except ForceChangePasswordException:
        raise TokenError(
            f"{username} still has the temporary password of the invitation: sign in once in the browser "
            "(python -m tools.token --from-stack) to choose a new one"
        ) from None
    except SoftwareTokenMFAChallengeException:
        raise TokenError(
            f"{username} uses an authenticator app (MFA), which the SRP path does not ask for: sign in in the "
            "browser instead (python -m tools.token --from-stack)"
        ) from None
    except ClientError as problem:
        error = problem.response.get("Error", {})
        raise TokenError(
            f"Cognito refused the sign-in: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except BotoCoreError as problem:
        raise CognitoUnreachable(f"could not reach Cognito: {problem}") from None
    result = answer.get("AuthenticationResult") or {}
    if "IdToken" not in result:
        raise TokenError(f"Cognito asked for {answer.get('ChallengeName')}, which this tool does not answer")
    return str(result["IdToken"])


def srp_in_regions(stack: StackSignIn, username: str, password: str, region: str | None = None) -> str:
    """SRP sign-in at ``region``, or at the pool's region and then, if Cognito there cannot be reached,
    at each replica region in turn (a primary-region outage)."""
    assert stack.user_pool_id and stack.public_client_id
    if region is not None and region not in stack.regions:
        raise TokenError(
            f"the pool has no replica in {region}; it signs in at {', '.join(stack.regions)} "
            "(`pulumi config set authReplica true` replicates it to the secondary region)"
        )
    regions = (region,) if region else stack.regions
    for index, where in enumerate(regions):
        try:
            return srp_sign_in(stack.user_pool_id, stack.public_client_id, username, password, region=where)
        except CognitoUnreachable as problem:
            if index == len(regions) - 1:
                raise
            print(f"tools.token: Cognito in {where}: {problem}; trying {regions[index + 1]}", file=sys.stderr)
    raise TokenError("no region to sign in at")  # unreachable: regions is never empty


# ----------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.token",
        description="Print an ID token of a user of the deployed stack (for Authorization: Bearer).",
    )
    parser.add_argument("--from-stack", action="store_true", required=True, help="read `pulumi stack output`")
    parser.add_argument("--stack", help="stack for --from-stack (default: the selected stack)")
    parser.add_argument("--srp", action="store_true", help="sign in without a browser (SRP)")
    parser.add_argument("--username", help="with --srp: the user's e-mail address")
    parser.add_argument(
        "--password-stdin", action="store_true", help="with --srp: read the password from stdin"
    )
    parser.add_argument(
        "--region",
        help="with --srp: sign in at this region's Cognito endpoint (with authReplica, the secondary's "
        "replica); default: the pool's region, then each replica region if it cannot be reached",
    )
    parser.add_argument("--no-browser", action="store_true", help="print the sign-in address, open nothing")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for the browser"
    )
    args = parser.parse_args(argv)
    if args.srp and not args.username:
        parser.error("--srp needs --username (the user's e-mail address)")
    if not args.srp and (args.username or args.password_stdin or args.region):
        parser.error("--username, --password-stdin and --region go with --srp")
    return args


def main(argv: Sequence[str] | None = None, outputs: Mapping[str, Any] | None = None) -> int:
    args = parse_args(argv)
    try:
        stack = sign_in_from_outputs(outputs if outputs is not None else stack_outputs(args.stack))
        if args.srp:
            if not stack.public_client_id or not stack.user_pool_id:
                raise TokenError(f"the stack has no {PUBLIC_CLIENT_ID_OUTPUT} output to sign in with SRP")
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
            token = srp_in_regions(stack, args.username, password, args.region)
        else:
            if not stack.auth_domain or not stack.web_client_id:
                raise TokenError(
                    f"the stack has no {AUTH_DOMAIN_OUTPUT}/{WEB_CLIENT_ID_OUTPUT} outputs (webClient off?): "
                    "`pulumi config set webClient true` and `pulumi up`, or use --srp --username EMAIL"
                )
            answer = browser_sign_in(
                f"https://{stack.auth_domain}",
                stack.web_client_id,
                open_browser=(lambda url: None) if args.no_browser else webbrowser.open,
                timeout=args.timeout,
            )
            token = str(answer.get("id_token") or "")
            if not token:
                raise TokenError("the token endpoint's answer has no id_token (is the openid scope allowed?)")
    except (TokenError, UsageError) as problem:
        print(f"tools.token: {problem}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
