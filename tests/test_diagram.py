"""tools.diagram draws what the program registers: every component and every resource type appears."""

from __future__ import annotations

import re

import pytest

from tools import diagram


@pytest.fixture(scope="module")
def prod() -> tuple[diagram.Graph, str]:
    graph = diagram.program_graph("prod")
    return graph, diagram.to_dot(graph, "prod")


def test_every_component_of_the_graph_appears(prod: tuple[diagram.Graph, str]) -> None:
    graph, dot = prod
    components = [r for r in graph.resources if diagram.is_component(r.typ)]
    assert len(components) >= 8
    for component in components:
        kind = component.typ.rsplit(":", 1)[-1]
        top = graph.top(component.name) == component.name
        # A top-level component is a box; one inside another is a node in its parent's box.
        expected = f'"cluster_{component.name}"' if top else f'label="{component.name} ({kind})"'
        assert expected in dot, component.name


def test_every_resource_type_appears_with_its_count(prod: tuple[diagram.Graph, str]) -> None:
    graph, dot = prod
    labels = set(re.findall(r'label="([^"]+)"', dot))
    for resource in graph.resources:
        if resource.typ.startswith("pulumi:providers:") or diagram.is_component(resource.typ):
            continue
        short = diagram.short_type(resource.typ)
        assert any(label == short or label.startswith(short + " x") for label in labels), resource.typ
    alarms = sum(1 for r in graph.resources if r.typ == "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert f"cloudwatch MetricAlarm x{alarms}" in labels


def test_regional_components_sit_in_their_region_and_the_rest_in_global(
    prod: tuple[diagram.Graph, str],
) -> None:
    _, dot = prod
    areas = re.findall(r'subgraph cluster_area_\d+ \{\n    label="([^"]+)"', dot)
    assert sorted(areas) == sorted(["us-east-1", "us-east-2", diagram.GLOBAL])

    def area_of(name: str) -> str:
        position = dot.index(f'"cluster_{name}"')
        return re.findall(r'cluster_area_\d+ \{\n    label="([^"]+)"', dot[:position])[-1]

    assert area_of("users-api-us-east-1") == "us-east-1"
    assert area_of("users-api-us-east-2") == "us-east-2"
    assert area_of("users-db") == diagram.GLOBAL  # clusters in two regions
    assert area_of("users-api-routing") == diagram.GLOBAL  # Route 53 is global


def test_dot_flag_prints_the_graph_and_a_missing_stack_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert diagram.main(["--stack", "dev", "--dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph architecture {")
    assert diagram.main(["--stack", "nosuchstack", "--dot"]) == 2
    assert "Pulumi.nosuchstack.yaml" in capsys.readouterr().err
