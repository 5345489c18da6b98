"""Structural checks of spack.yaml without Spack, and 'bedrock-deploy spack check'."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bedrock_deploy.cli import main
from bedrock_deploy.components import catalogue
from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.sites import load_site
from bedrock_deploy.spack_check import (
    SpecSyntaxError,
    check_against_plan,
    check_manifest,
    knowledge,
    parse_spec,
    version_satisfies,
)
from bedrock_deploy.spack_env import render_spack_env, spec_string
from bedrock_deploy.yaml_source import parse_yaml
from test_spack_env import inter_node_transport, kv_config, make_plan


def _doc(specs: list[str], extra: str = "") -> object:
    body = "".join(f"    - {s!r}\n" for s in specs)
    return parse_yaml(f"spack:\n  specs:\n{body}{extra}", "spack.yaml")


def _messages(text_specs: list[str], extra: str = "") -> list[str]:
    return [p.message for p in check_manifest(_doc(text_specs, extra))]  # type: ignore[arg-type]


# --- the spec grammar -------------------------------------------------------------------------

def test_parse_spec_examples() -> None:
    s = parse_spec("mercury~boostsys~checksum+ofi ^libfabric@1.22.0 fabrics=tcp,rxm")
    assert s.root.name == "mercury"
    assert s.root.variants == {"boostsys": False, "checksum": False, "ofi": True}
    assert s.nodes[1].name == "libfabric" and s.nodes[1].version == "1.22.0"
    assert s.nodes[1].variants == {"fabrics": ("tcp", "rxm")}
    gcc = parse_spec("gcc@13.3.0 languages='c,c++,fortran'").root
    assert gcc.variants == {"languages": ("c", "c++", "fortran")}
    assert parse_spec("@0.24.0:").root.version == "0.24.0:"
    assert parse_spec("%gcc@12.3").root.compiler == "gcc@12.3"


@pytest.mark.parametrize("bad", ["mochi-margo@@1.0 +", "a b", "mercury ^", "x+y+y", "", "x $y"])
def test_parse_spec_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(SpecSyntaxError):
        parse_spec(bad)


_ident = st.from_regex(r"[a-z][a-z0-9\-]{0,10}", fullmatch=True)


@given(_ident, st.lists(st.tuples(st.sampled_from("+~"), _ident), max_size=4, unique_by=lambda t:
                        t[1]), st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
                                        max_size=3))
def test_spec_strings_round_trip(name: str, flags: list[tuple[str, str]],
                                 values: list[str]) -> None:
    tokens = [sign + var for sign, var in flags]
    if values and "fabrics" not in {v for _, v in flags}:
        tokens.append("fabrics=" + ",".join(values))
    node = parse_spec(spec_string(name, tokens)).root
    assert node.name == name
    for sign, var in flags:
        assert node.variants[var] is (sign == "+")
    if values and "fabrics" not in {v for _, v in flags}:
        assert node.variants["fabrics"] == tuple(values)


def test_version_ranges() -> None:
    assert version_satisfies("0.9.1", "@0.8.4:")
    assert not version_satisfies("0.8.3", "@0.8.4:")
    assert version_satisfies("0.14.2", "@0.5.0:0.14.2")
    assert not version_satisfies("0.16.1", "@0.5.0:0.14.2")
    assert version_satisfies("1.2", "@1.2")
    assert not version_satisfies("0.7.0", "@0.7.1:")
    assert version_satisfies("develop", "@0.7.1:")


# --- what the structural check rejects (one test each, as the issue asks) ---------------------

def test_rejects_a_variant_on_the_wrong_package() -> None:
    problems = check_manifest(_doc(["mercury fabrics=tcp"]))  # type: ignore[arg-type]
    assert len(problems) == 1
    assert "no variant 'fabrics' for package mercury" in problems[0].message
    assert "variant of libfabric" in (problems[0].hint or "")
    assert problems[0].location is not None and problems[0].location.line == 3


def test_rejects_an_unknown_package() -> None:
    msgs = _messages(["mochi-no-such-package"])
    assert msgs == ["unknown package 'mochi-no-such-package' in spec 'mochi-no-such-package'"]
    hint = check_manifest(_doc(["mochi-yokn+rocksdb"]))[0].hint  # type: ignore[arg-type]
    assert hint is not None and "did you mean 'mochi-yokan'" in hint


def test_rejects_a_fabric_the_transport_does_not_need() -> None:
    site = load_site("generic-slurm-tcp").profile
    t = inter_node_transport(site)
    wrong = t.__class__(**{**t.__dict__, "fabrics": ("tcp", "rxm", "verbs")})
    with pytest.raises(InputError) as err:
        render_spack_env(make_plan(site, transport=wrong))
    assert "verbs not needed by transport 'tcp'" in str(err.value)
    # ...and the check alone, on a hand-edited environment
    text = render_spack_env(make_plan()).replace("fabrics=tcp,rxm\n", "fabrics=tcp,rxm,psm2\n", 1)
    problems = check_against_plan(parse_yaml(text, "spack.yaml"), make_plan())
    assert any("psm2 not needed by transport 'tcp'" in p.message for p in problems)


def test_rejects_missing_affinity_when_the_layout_pins() -> None:
    text = render_spack_env(make_plan(pins=True)).replace("argobots+affinity", "argobots")
    problems = check_against_plan(parse_yaml(text, "spack.yaml"), make_plan(pins=True))
    assert [p.message for p in problems] == [
        "the layout pins xstreams to CPUs but argobots is not built +affinity"]
    assert check_against_plan(parse_yaml(text, "spack.yaml"), make_plan(pins=False)) == []


def test_rejects_bad_values_and_out_of_range_variants() -> None:
    assert _messages(["libfabric fabrics=nonsense"]) == [
        "invalid value 'nonsense' for variant 'fabrics' of libfabric "
        "(in 'libfabric fabrics=nonsense')"]
    assert any("exists only @0.7.1:" in m for m in _messages(["mochi-flock+pinggy"]))
    assert _messages(["mochi-flock@0.7.1:+pinggy"]) == []
    assert any("is boolean" in m for m in _messages(["argobots affinity=yes"]))
    assert any("takes a value" in m for m in _messages(["argobots+stackguard"]))


def test_rejects_unknown_keys_and_old_repo_syntax() -> None:
    msgs = _messages(["mochi-margo"], "  bogus_key: 1\n  repos:\n    - /path/to/repo\n")
    assert any("unknown key 'bogus_key'" in m for m in msgs)
    assert any("pre-1.0 syntax" in m for m in msgs)
    msgs = _messages(["mochi-margo"], "  repos:\n    builtin: {git: a}\n    mochi: {git: b}\n")
    assert msgs == ["the mochi repo is listed after builtin"]


def test_rejects_vendor_libfabric_with_a_fabrics_request() -> None:
    text = render_spack_env(make_plan()).replace(
        "  packages:\n", "  packages:\n    libfabric:\n      buildable: false\n"
        "      externals:\n        - {spec: libfabric@1.22.0, prefix: /opt/lf}\n", 1)
    text = text.replace("    libfabric:\n      require:\n        - fabrics=tcp,rxm\n", "")
    problems = check_against_plan(parse_yaml(text, "spack.yaml"), make_plan())
    assert any("Spack cannot satisfy both" in p.message for p in problems)


def test_knowledge_table_is_consistent() -> None:
    kb = knowledge()
    for pkg in kb.packages.values():
        assert pkg.unchecked or pkg.latest, pkg.name
        for v in pkg.variants.values():
            if v.values is not None and not v.multi:
                assert str(v.default) in v.values, (pkg.name, v.name)
    for component in catalogue().components.values():
        assert component.package in kb.packages
    for plugin in kb.section("mercury_plugins").values():
        for token in plugin["mercury"]:
            assert token[1:] in kb.packages["mercury"].variants


# --- the command ------------------------------------------------------------------------------

def _deployment(tmp_path: Path) -> Path:
    d = tmp_path / "deploy"
    d.mkdir()
    (d / "spack.yaml").write_text(render_spack_env(make_plan(configs=[kv_config()])))
    return d


def _no_spack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACK_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")


def test_check_without_spack_runs_the_structural_check(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _no_spack(monkeypatch)
    d = _deployment(tmp_path)
    assert main(["spack", "check", str(d), "--concretize"]) == 0
    out = capsys.readouterr().out
    assert "structural check passed (7 specs)" in out
    assert "Spack not found" in out and "--concretize needs Spack" in out
    assert f"spack env activate {d} && spack concretize && spack install" in out
    assert not (d / "spack.lock").exists()


def test_check_reports_located_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _no_spack(monkeypatch)
    d = _deployment(tmp_path)
    text = (d / "spack.yaml").read_text().replace("mochi-yokan", "mochi-yokan fabrics=tcp")
    (d / "spack.yaml").write_text(text)
    assert main(["spack", "check", str(d)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "mochi-yokan" in t)
    assert f"{d / 'spack.yaml'}:{line}:7: error: spack.specs[3]: no variant 'fabrics'" in err
    assert main(["spack", "check", str(tmp_path / "missing")]) == 2


def _stand_in_spack(tmp_path: Path, result: dict[str, object]) -> Path:
    """A stand-in for the 'spack' executable: Spack itself cannot be installed on this machine
    (not on PyPI or Debian, no network), so this replays what 'spack python
    share/spack/spack_api_check.py DIR' printed with Spack 1.1 (spack-observed.md)."""
    root = tmp_path / "spack"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "spack"
    log = tmp_path / "spack-argv.json"
    exe.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"print('==> some Spack chatter')\n"
        f"print('BEDROCK_DEPLOY_RESULT ' + {json.dumps(json.dumps(result))})\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return root


def test_check_with_spack_uses_its_python_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    d = _deployment(tmp_path)
    root = _stand_in_spack(tmp_path, {
        "spack_version": "1.1.0", "errors": [], "specs": ["mochi-bedrock+mpi"] * 7,
        "concretized": ["mochi-bedrock@0.16.1"] * 7, "lock": str(d / "spack.lock")})
    monkeypatch.setenv("SPACK_ROOT", str(root))
    assert main(["spack", "check", str(d), "--concretize"]) == 0
    out = capsys.readouterr().out
    assert "Spack 1.1.0" in out and "7 specs valid" in out and "concretized 7 roots" in out
    argv = json.loads((tmp_path / "spack-argv.json").read_text())
    assert argv[0] == "python" and argv[1].endswith("spack/spack_api_check.py")
    assert argv[2:] == [str(d), "--concretize"]


def test_check_with_spack_reports_spack_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = _deployment(tmp_path)
    msg = ("failed to concretize `mercury+ofi ^libfabric fabrics=rxm,tcp` ... Cannot build "
           "libfabric, since it is configured buildable:false and no externals satisfy the "
           "request")
    root = _stand_in_spack(tmp_path, {"spack_version": "1.1.0", "specs": [], "concretized": [],
                                      "lock": None,
                                      "errors": [{"stage": "concretize", "message": msg}]})
    assert main(["spack", "check", str(d), "--concretize", "--spack", str(root)]) == 2
    assert "Spack (concretize): failed to concretize" in capsys.readouterr().err


def test_api_script_is_valid_python() -> None:
    from bedrock_deploy.resources import share_path
    script = share_path("spack", "spack_api_check.py")
    compile(script.read_text(), str(script), "exec")
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, str(script), "/nonexistent"], capture_output=True,
                          text=True, env=env, check=False)
    assert proc.returncode != 0 and "No module named 'spack'" in proc.stderr


def _write_manifest(d: Path, pins: bool, site_file: str) -> None:
    plan = make_plan(pins=pins)
    t = plan.transport
    (d / "manifest.json").write_text(json.dumps({
        "transport": {"name": t.name, "protocol": t.protocol, "provider": t.provider,
                      "fabrics": list(t.fabrics), "env": t.env,
                      "launcher_flags": list(t.launcher_flags), "mercury": t.mercury,
                      "reason": t.reason},
        "layout": {"pins_threads": pins, "use_smt": False},
        "inputs": [{"role": "site", "file": site_file}]}))


def test_check_uses_the_manifest_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _no_spack(monkeypatch)
    d = _deployment(tmp_path)
    site_file = load_site("generic-slurm-tcp").files[0]
    _write_manifest(d, pins=True, site_file=site_file)
    assert main(["spack", "check", str(d)]) == 0
    assert "matches manifest.json's transport and layout" in capsys.readouterr().out
    text = (d / "spack.yaml").read_text().replace("argobots+affinity", "argobots")
    (d / "spack.yaml").write_text(text)
    assert main(["spack", "check", str(d)]) == 2
    assert "argobots is not built +affinity" in capsys.readouterr().err
    _write_manifest(d, pins=False, site_file="/gone/site.yaml")  # site no longer readable
    assert main(["spack", "check", str(d)]) == 0


def test_generated_deployment_passes_spack_check(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end with the real planner: generate, then check what it wrote."""
    generate = pytest.importorskip("bedrock_deploy.generate")
    _no_spack(monkeypatch)
    from bedrock_deploy.resources import share_path
    out = tmp_path / "kv"
    generate.generate("generic-slurm-tcp", share_path("examples", "kv-service.yaml"), out)
    assert main(["spack", "check", str(out)]) == 0
    text = (out / "spack.yaml").read_text()
    assert "- mochi-yokan\n" in text and "- libfabric fabrics=tcp,rxm\n" in text


def test_site_packages_may_name_packages_we_do_not_know() -> None:
    extra = ("  packages:\n    ucc:\n      require: ['@1.2:']\n      externals:\n"
             "        - {spec: ucc@1.2.0, prefix: /usr}\n"
             "    mercury:\n      require: ['+nosuchvariant']\n")
    assert _messages(["mochi-margo"], extra) == [
        "no variant 'nosuchvariant' for package mercury (in '+nosuchvariant')"]
    assert _messages(["ucc"]) == ["unknown package 'ucc' in spec 'ucc'"]


def _stand_in_spack_modules(bad: set[str], unsat: bool) -> dict[str, object]:
    """Stand-ins for the Spack 1.1 API calls spack_api_check.py makes (spack-observed.md
    "Python API"); only the documented surface, so the script's own logic can be exercised."""
    import types

    class SpackError(Exception):
        pass

    class Spec:
        def __init__(self, text: str):
            self.text = text

        def __str__(self) -> str:
            return self.text

        def validate_or_raise(self) -> None:
            if self.text in bad:
                raise SpackError(f"No such variant for spec: '{self.text}'")

        def format(self, fmt: str) -> str:
            return self.text.split("+")[0].split("~")[0] + "@1.0"

    class Environment:
        written = False

        def __init__(self, path: str):
            from ruamel.yaml import YAML
            data = YAML(typ="safe").load(Path(path, "spack.yaml").read_text())
            self.user_specs = types.SimpleNamespace(specs=[Spec(s) for s in
                                                           data["spack"]["specs"]])
            self.path = path

        def __enter__(self) -> Environment:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def write_transaction(self) -> Environment:
            return self

        def concretize(self, force: bool = False) -> list[tuple[Spec, Spec]]:
            assert force
            if unsat:
                raise SpackError("failed to concretize")
            return [(s, s) for s in self.user_specs.specs]

        def write(self) -> None:
            Path(self.path, "spack.lock").write_text("{}")

    def load_config(fh: object) -> dict[str, object]:
        return {}

    def validate(data: object, schema: object, filename: str | None = None) -> None:
        return None

    mods: dict[str, object] = {}
    for name in ("spack", "spack.config", "spack.environment", "spack.error", "spack.schema",
                 "spack.schema.env", "spack.spec", "spack.util", "spack.util.spack_yaml"):
        mods[name] = types.ModuleType(name)
    mods["spack"].spack_version = "1.1.0"  # type: ignore[attr-defined]
    mods["spack.config"].validate = validate  # type: ignore[attr-defined]
    mods["spack.environment"].Environment = Environment  # type: ignore[attr-defined]
    mods["spack.error"].SpackError = SpackError  # type: ignore[attr-defined]
    mods["spack.schema.env"].schema = {}  # type: ignore[attr-defined]
    mods["spack.spec"].Spec = Spec  # type: ignore[attr-defined]
    mods["spack.util.spack_yaml"].load_config = load_config  # type: ignore[attr-defined]
    for name, mod in mods.items():  # 'import spack.x as y' resolves through the parent
        if "." in name:
            parent, child = name.rsplit(".", 1)
            setattr(mods[parent], child, mod)
    return mods


@pytest.mark.parametrize(("bad", "unsat", "concretize"), [
    (set(), False, True), ({"mochi-yokan", "mochi-margo"}, False, True), (set(), True, True),
    (set(), False, False)])
def test_api_script_logic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: set[str],
                          unsat: bool, concretize: bool) -> None:
    import runpy

    from bedrock_deploy.resources import share_path
    d = _deployment(tmp_path)
    for name, mod in _stand_in_spack_modules(bad, unsat).items():
        monkeypatch.setitem(sys.modules, name, mod)
    script = runpy.run_path(str(share_path("spack", "spack_api_check.py")))
    out = script["main"]([str(d), *(["--concretize"] if concretize else [])])
    if bad:  # every bad spec is reported, not only the first
        assert sorted(e["spec"] for e in out["errors"]) == sorted(bad)
        assert not (d / "spack.lock").exists()
    elif unsat:
        assert out["errors"] == [{"stage": "concretize", "message": "failed to concretize"}]
    elif concretize:
        assert out["errors"] == [] and len(out["concretized"]) == 7
        assert out["lock"] == str(d / "spack.lock") and (d / "spack.lock").is_file()
    else:
        assert out["errors"] == [] and out["lock"] is None and len(out["specs"]) == 7
