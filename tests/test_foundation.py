"""The shared foundation: CPU lists, topology derivation, located YAML errors, the CLI shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedrock_deploy.cli import build_parser, main
from bedrock_deploy.cpulist import CpuListError, cpu_mask_hex, format_cpulist, parse_cpulist
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.site_profile import Node
from bedrock_deploy.sites import deep_merge
from bedrock_deploy.topology import Topology
from bedrock_deploy.yaml_source import parse_yaml


@given(st.sets(st.integers(min_value=0, max_value=600), max_size=80))
def test_cpulist_round_trips(cpus: set[int]) -> None:
    assert parse_cpulist(format_cpulist(cpus)) == sorted(cpus)


def test_cpulist_examples_and_errors() -> None:
    assert parse_cpulist("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert format_cpulist([104, 0, 1, 2, 105]) == "0-2,104-105"
    assert cpu_mask_hex([0, 2]) == "0x5"
    with pytest.raises(CpuListError, match="backwards"):
        parse_cpulist("5-3")
    with pytest.raises(CpuListError, match="not a CPU number"):
        parse_cpulist("0-3,x")


def _node(**kw: object) -> Node:
    base: dict[str, object] = {"sockets": 2, "cores_per_socket": 52, "threads_per_core": 2,
                               "numa_domains": [{"id": 0, "cpus": "0-51,104-155"},
                                                {"id": 1, "cpus": "52-103,156-207"}]}
    base.update(kw)
    return Node.model_validate(base)


def test_topology_aurora_like_stride_siblings() -> None:
    topo = Topology.from_node(_node(reserved_cores=[0, 52]))
    assert len(topo.cores) == 104
    assert topo.cores[0].cpus == (0, 104)
    assert topo.cores[103].cpus == (103, 207)
    assert topo.cores[52].socket == 1 and topo.cores[52].numa == 1
    usable = topo.usable_cores
    assert len(usable) == 102
    assert all(c.index not in (0, 52) for c in usable)


def test_topology_adjacent_siblings_and_restricted_cpuset() -> None:
    node = Node.model_validate({
        "sockets": 1, "cores_per_socket": 4, "threads_per_core": 2, "sibling_map": "adjacent",
        "numa_domains": [{"id": 0, "cpus": "0-7"}], "allowed_cpus": "2-5"})
    topo = Topology.from_node(node)
    assert topo.cores[1].cpus == (2, 3)
    assert [c.index for c in topo.usable_cores] == [1, 2]
    assert topo.allowed_cpus == frozenset({2, 3, 4, 5})


def test_yaml_locations_are_one_based() -> None:
    doc = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert (doc.locate(("a", "b")).line, doc.locate(("a", "b")).column) == (2, 3)
    assert doc.locate(("a", "c", 1)).line == 5
    # an unknown path falls back to its nearest located ancestor
    assert doc.locate(("a", "zzz")).line == 1


def test_yaml_syntax_error_is_located() -> None:
    with pytest.raises(InputError) as exc:
        parse_yaml("a: [1, 2\nb: 3\n", "bad.yaml")
    text = str(exc.value)
    assert text.startswith("bad.yaml:") and "invalid YAML" in text


def test_deep_merge_replaces_lists_and_merges_maps() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    over = {"a": {"y": [3]}, "c": 2}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # inputs untouched


def test_every_command_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)  # type: ignore[union-attr]
    assert "sites" in names
    for name in names:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0


def test_bad_input_exits_2_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnode: 3\n")
    proc = subprocess.run([sys.executable, "-m", "bedrock_deploy", "sites", "validate", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert f"{bad}:2:1" in proc.stderr
    assert "Traceback" not in proc.stderr
