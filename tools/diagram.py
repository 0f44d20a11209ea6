"""The architecture picture, drawn from the resource graph the Pulumi program registers.

    python -m tools.diagram [--stack prod] [--out docs] [--dot]

The program runs under the mocks harness (tests/pulumi_harness.py) with the stack's config, as the unit
tests and tools.cost run it; nothing here lists resources by hand. Each top-level component becomes a
box holding its resources (one node per resource type, with a count), placed in its region's cluster
when every AWS resource under it is in one region, else in the "global and multi-region" cluster (the
DSQL pair, routing, monitoring). Arrows are the program's explicit ``depends_on`` between components.
Graphviz's ``dot`` (Debian package ``graphviz``) renders ``<out>/architecture.svg`` and ``.png``;
``--dot`` prints the DOT text only (no Graphviz needed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GLOBAL = "global and multi-region"
GLOBAL_SERVICES = ("aws:route53/", "aws:cloudfront/")  # bound to us-east-1's provider, but global
ROWS = 5  # nodes per column inside a component box


class DiagramError(RuntimeError):
    """What is missing to draw the picture, and how to get it."""


def is_component(typ: str) -> bool:
    return not typ.startswith(("aws:", "pulumi:", "pulumi-python:", "command:"))


def short_type(typ: str) -> str:
    """``aws:lambda/function:Function`` -> ``lambda Function``; dynamic ``...dsql:SchemaMigration`` ->
    ``SchemaMigration (dynamic)``."""
    if typ.startswith("pulumi-python:dynamic/"):
        return f"{typ.rsplit(':', 1)[-1]} (dynamic)"
    package, _, name = typ.rpartition(":")
    module = package.split(":", 1)[-1].split("/")[0]
    return f"{module} {name}"


@dataclass
class Graph:
    resources: list[Any]
    parents: dict[str, str]
    depends_on: dict[str, list[str]]

    def top(self, name: str) -> str:
        """The top-level ancestor's name (a resource without a parent is its own top)."""
        seen = set()
        while name in self.parents and name not in seen:
            seen.add(name)
            name = self.parents[name]
        return name


def program_graph(stack: str) -> Graph:
    if not (ROOT / f"Pulumi.{stack}.yaml").is_file():
        raise DiagramError(f"no Pulumi.{stack}.yaml: name a stack that has a stack file (e.g. --stack prod)")
    sys.path.insert(0, str(ROOT))
    from tests.pulumi_harness import run_program

    with contextlib.redirect_stdout(io.StringIO()):
        run = run_program(stack=stack)
    return Graph(run.resources, run.parents, run.depends_on)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph, title: str) -> str:
    by_name = {r.name: r for r in graph.resources}
    groups: dict[str, list[Any]] = defaultdict(list)  # top-level name -> resources under it (itself too)
    for resource in graph.resources:
        if resource.typ.startswith("pulumi:providers:"):
            continue  # one per region, implied by the clusters
        groups[graph.top(resource.name)].append(resource)
    placement: dict[str, str] = {}
    for top, members in groups.items():
        regions = {
            GLOBAL if m.typ.startswith(GLOBAL_SERVICES) else m.region
            for m in members
            if m.region and m.typ.startswith("aws:")
        }
        placement[top] = regions.pop() if len(regions) == 1 else GLOBAL
    lines = [
        "digraph architecture {",
        f"  label={_quote(title)}; labelloc=t; fontname=Helvetica; compound=true; rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica, fontsize=10];',
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    anchors: dict[str, str] = {}
    for index, area in enumerate(sorted(set(placement.values()), key=lambda a: (a == GLOBAL, a))):
        lines.append(f"  subgraph cluster_area_{index} {{")
        lines.append(f"    label={_quote(area)}; style=dashed; fontsize=14;")
        for top in sorted(t for t, a in placement.items() if a == area):
            top_resource = by_name[top]
            kind = top_resource.typ.rsplit(":", 1)[-1]
            lines.append(f"    subgraph {_quote('cluster_' + top)} {{")
            lines.append(
                f"      label={_quote(f'{top} ({kind})')}; style=filled; fillcolor=aliceblue; fontsize=11;"
            )
            counts = Counter(
                short_type(m.typ)
                for m in groups[top]
                if not is_component(m.typ) and not m.typ.startswith("pulumi:providers:")
            )
            subcomponents = sorted(
                f"{m.name} ({m.typ.rsplit(':', 1)[-1]})"
                for m in groups[top]
                if is_component(m.typ) and m.name != top
            )
            if not counts and not subcomponents:
                counts[short_type(top_resource.typ)] = 1
            for position, (label, count) in enumerate(sorted(counts.items())):
                node = f"{top}#{position}"
                anchors.setdefault(top, node)
                text = label + (f" x{count}" if count > 1 else "")
                lines.append(f"      {_quote(node)} [label={_quote(text)}];")
            nodes = [f"{top}#{position}" for position in range(len(counts))]
            for position, label in enumerate(subcomponents):
                node = f"{top}#sub{position}"
                anchors.setdefault(top, node)
                nodes.append(node)
                lines.append(f"      {_quote(node)} [label={_quote(label)}, fillcolor=lightyellow];")
            # Invisible edges lay a box's nodes out in columns of ROWS instead of one long column.
            for first, second in zip(nodes, nodes[ROWS:], strict=False):
                lines.append(f"      {_quote(first)} -> {_quote(second)} [style=invis];")
            lines.append("    }")
        lines.append("  }")
    edges = set()
    for name, targets in graph.depends_on.items():
        source = graph.top(name)
        for target in targets:
            target_top = graph.top(target)
            if source != target_top and source in anchors and target_top in anchors:
                edges.add((source, target_top))
    for source, target in sorted(edges):
        lines.append(
            f"  {_quote(anchors[source])} -> {_quote(anchors[target])} "
            f'[ltail={_quote("cluster_" + source)}, lhead={_quote("cluster_" + target)}, label="depends on"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, out: Path) -> list[Path]:
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError(
            "Graphviz's `dot` is not installed: `sudo apt-get install graphviz` (Debian/Ubuntu) or "
            "`brew install graphviz`; or print the DOT text with --dot"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("svg", "png"):
        target = out / f"architecture.{fmt}"
        subprocess.run(
            [dot, f"-T{fmt}", "-Gdpi=96", "-o", str(target)], input=dot_text, text=True, check=True
        )
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.diagram",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stack", default="prod", help="the stack whose Pulumi.<stack>.yaml to draw (default: prod)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs", help="where architecture.svg/.png go (default: docs)"
    )
    parser.add_argument("--dot", action="store_true", help="print the DOT text instead of rendering it")
    args = parser.parse_args(argv)
    try:
        text = to_dot(
            program_graph(args.stack),
            f"dsql-users-api, stack {args.stack} (from the program's resource graph)",
        )
        if args.dot:
            print(text, end="")
            return 0
        for path in render(text, args.out):
            print(f"wrote {path}")
    except DiagramError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
