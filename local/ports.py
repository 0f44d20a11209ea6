"""The one setting that says where the local regions listen, shared by ``python -m local`` (``make dev``),
``python -m tools.smoke`` and ``python -m tools.drill``:

    PORTS="us-east-1=9001 us-east-2=9002"        # environment, or --ports with the same text

and where the launcher's control endpoint listens (CONTROL_PORT, or --control-port; docs/local.md).
Standard library only: the smoke command imports it too.
"""

from __future__ import annotations

import os
import re

DEFAULT_PORTS = "us-east-1=8001 us-east-2=8002"
DEFAULT_CONTROL_PORT = 8000
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def parse_ports(text: str, *, allow_zero: bool = True) -> list[tuple[str, int]]:
    """``"us-east-1=9001 us-east-2=9002"`` (spaces or commas between) -> [(region, port), ...].

    Port 0 picks a free port (the launcher only). Raises ValueError saying what is wrong and the syntax.
    """
    regions: list[tuple[str, int]] = []
    for item in text.replace(",", " ").split():
        name, sep, port = item.partition("=")
        if not sep or not _REGION.match(name) or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(
                f"{item!r} is not REGION=PORT: write the regions like "
                f'"{DEFAULT_PORTS}" (lower-case region names, ports 1-65535)'
            )
        if int(port) == 0 and not allow_zero:
            raise ValueError(f"{item!r}: port 0 only means 'a free port' to the launcher; give the real port")
        if name in (region for region, _ in regions):
            raise ValueError(f"region {name!r} is named twice in {text!r}")
        if int(port) and int(port) in (used for _, used in regions):
            raise ValueError(f"port {port} is named twice in {text!r}: give each region a port of its own")
        regions.append((name, int(port)))
    if not regions:
        raise ValueError(f'no regions given: write them like "{DEFAULT_PORTS}"')
    return regions


def ports_setting(explicit: str | None = None) -> str:
    """The ports text: ``explicit`` (a --ports value), else the PORTS environment variable, else the default."""
    return explicit or os.environ.get("PORTS") or DEFAULT_PORTS


def control_port_setting(explicit: int | None = None) -> int:
    """The control endpoint's port: ``explicit``, else CONTROL_PORT, else 8000."""
    if explicit is not None:
        return explicit
    text = os.environ.get("CONTROL_PORT", "").strip()
    if not text:
        return DEFAULT_CONTROL_PORT
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise ValueError(f"CONTROL_PORT={text!r} is not a port number (1-65535); fix or unset it")
    return int(text)
