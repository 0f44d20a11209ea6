"""Print an ID token that the running local app (``make dev``) accepts, signed by its local issuer.

    TOKEN=$(.venv/bin/python -m local.token --sub alice --email alice@example.com)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/users/me

``--admin`` puts the token's subject in the ``admins`` group; ``--group NAME`` (repeatable) in any
group, named as Cognito allows (1 to 128 letters, marks, symbols, numbers or punctuation, commas
included), so ``--group 'x,admins'`` mints the token of a member of the one group ``x,admins``. The
local authorizer then joins the names with a comma, as API Gateway does. The issuer (and its private key) is the
file the running ``python -m local`` wrote (local/auth.py ``issuer_file``); ``--issuer-file`` or
``LOCAL_ISSUER_FILE`` names another. Exit status 2 when there is no running local app's issuer.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

from local.auth import DEFAULT_TOKEN_LIFETIME_S, IssuerFileError, LocalIssuer, issuer_file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sub", required=True, help="the token's subject: the owner key of a profile")
    parser.add_argument("--email", help="a verified email claim (a non-admin's profile email must be it)")
    parser.add_argument("--admin", action="store_true", help="member of the admins group")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="member of the group NAME, exactly as written (repeatable)",
    )
    parser.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_TOKEN_LIFETIME_S,
        help=f"seconds until it expires (default {DEFAULT_TOKEN_LIFETIME_S}, the stack's ID token lifetime)",
    )
    parser.add_argument(
        "--issuer-file", type=Path, help="the local app's issuer file (default: its usual place)"
    )
    return parser.parse_args(argv)


def group_name_problem(name: str) -> str | None:
    """Why Cognito would refuse ``name`` as a group name (botocore ``GroupNameType``), or None."""
    if not 1 <= len(name) <= 128:
        return f"--group {name!r}: a group name has 1 to 128 characters"
    for char in name:
        if unicodedata.category(char)[0] not in "LMSNP":
            return (
                f"--group {name!r}: {char!r} (U+{ord(char):04X}) cannot be in a Cognito group name; use "
                "letters, marks, symbols, numbers and punctuation only (no spaces or control characters)"
            )
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in args.group:
        problem = group_name_problem(name)
        if problem:
            print(f"local.token: {problem}", file=sys.stderr)
            return 2
    if not args.sub.strip() or len(args.sub) > 255:
        print("local.token: --sub must be 1 to 255 characters", file=sys.stderr)
        return 2
    if not 1 <= args.lifetime <= 86400:
        print(
            "local.token: --lifetime must be 1 to 86400 seconds (Cognito allows at most a day)",
            file=sys.stderr,
        )
        return 2
    try:
        issuer = LocalIssuer.load(args.issuer_file or issuer_file())
    except IssuerFileError as exc:
        print(f"local.token: {exc}", file=sys.stderr)
        return 2
    print(
        issuer.token(
            args.sub,
            email=args.email,
            admin=args.admin,
            groups=tuple(dict.fromkeys(args.group)),
            lifetime_s=args.lifetime,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
