"""Build a stack's Lambda dependency layer where the Pulumi program expects it, before a preview.

The layer zip lives under build/, outside Pulumi's state. On a fresh checkout of a stack that was
already deployed, the build command does not run again (its triggers are unchanged) and the program
could not read the archive; this writes it first, for the stack's own architecture and runtime:

    python scripts/build_stack_layer.py --stack prod          # or: make layer STACK=prod
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import PROJECT, parse_config  # noqa: E402
from components.lambda_artifact import layer_build_command, layer_zip_path  # noqa: E402


def stack_layer_path(stack: str) -> tuple[str, str, str]:
    """(architecture, runtime, zip path relative to the project) for ``Pulumi.<stack>.yaml``."""
    stack_file = ROOT / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    if not stack_file.exists():
        raise SystemExit(
            f"{stack_file.name} not found; name a stack that has a stack file, e.g. --stack prod"
        )
    document = yaml.safe_load(stack_file.read_text()) or {}
    prefix = f"{PROJECT}:"
    raw = {
        key[len(prefix) :]: value if isinstance(value, str) else json.dumps(value)
        for key, value in (document.get("config") or {}).items()
        if key.startswith(prefix)
    }
    config = parse_config(raw)
    path = layer_zip_path(config.lambda_architecture, config.lambda_runtime)
    return config.lambda_architecture, config.lambda_runtime, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod", help="stack name (Pulumi.<stack>.yaml); default prod")
    parser.add_argument("--print-path", action="store_true", help="only print where the zip goes")
    args = parser.parse_args(argv)
    architecture, runtime, path = stack_layer_path(args.stack)
    if args.print_path:
        print(path)
        return 0
    if (ROOT / path).exists():
        print(f"{path} is already built")
        return 0
    command = layer_build_command(architecture, runtime, path, python=sys.executable)
    return subprocess.run(command, shell=True, cwd=ROOT, check=False).returncode  # noqa: S602


if __name__ == "__main__":
    sys.exit(main())
