"""Complete the web client's folder, ``web/``, with the two things it does not keep in git:

- ``web/openapi.yaml``: a copy of ``handler/openapi.yaml``, the document the API reference page renders;
- ``web/vendor/swagger-ui/``: Swagger UI's bundle and stylesheet, from ``web-vendor/``'s npm lock
  (``npm ci --prefix web-vendor --ignore-scripts``), so no page loads anything from a CDN.

After it, ``web/`` is the whole site, served as it is by ``python -m local`` and uploaded as it is by
the deployment. ``make web`` runs both steps:

    npm ci --prefix web-vendor --ignore-scripts && python -m scripts.build_web

Standard library only. Files are written to a temporary name and renamed, so a server reading the
folder at the same moment never sees half a file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = ROOT / "web"
OPENAPI_SOURCE = ROOT / "handler" / "openapi.yaml"
SWAGGER_UI_PACKAGE = ROOT / "web-vendor" / "node_modules" / "swagger-ui-dist"
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
SWAGGER_UI_DIR = Path("vendor") / "swagger-ui"


class WebBuildError(RuntimeError):
    """The folder cannot be completed; the message says what is missing and the command that fixes it."""


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(source.read_bytes())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build_web(web_dir: Path = WEB_DIR, *, require_reference: bool = True) -> list[str]:
    """Copy the API document and Swagger UI's files into ``web_dir``; returns the Swagger UI files that
    were missing (only when ``require_reference`` is False; else WebBuildError names them)."""
    missing = [name for name in SWAGGER_UI_FILES if not (SWAGGER_UI_PACKAGE / name).is_file()]
    if missing and require_reference:
        raise WebBuildError(
            f"Swagger UI is not installed ({', '.join(missing)} missing under web-vendor/node_modules): "
            "run `make web` (npm ci --prefix web-vendor --ignore-scripts installs it from its lock)"
        )
    _copy(OPENAPI_SOURCE, web_dir / "openapi.yaml")
    for name in SWAGGER_UI_FILES:
        if name not in missing:
            _copy(SWAGGER_UI_PACKAGE / name, web_dir / SWAGGER_UI_DIR / name)
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.build_web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--web-dir", type=Path, default=WEB_DIR, help="the client's folder (default web/)")
    args = parser.parse_args(argv)
    try:
        build_web(args.web_dir)
    except WebBuildError as exc:
        print(f"build_web: {exc}", file=sys.stderr)
        return 2
    print(f"web client complete in {args.web_dir}: openapi.yaml and {SWAGGER_UI_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
