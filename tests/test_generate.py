"""``generate``: the deployment directory, its manifest, atomic writes, bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.diagnostics import InputError, OutputError
from bedrock_deploy.generate import generate, write_tree
from bedrock_deploy.resources import share_path

KV = str(share_path("examples", "kv-service.yaml"))
POLARIS = ["--site", "polaris", "--account", "P"]  # ALCF requires an account
MOFKA = str(share_path("examples", "mofka-like.yaml"))


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_generate_writes_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    assert main(["generate", *POLARIS, "--service", MOFKA, "-o", str(out)]) == 0
    for rel in ["manifest.json", "spack.yaml", "layout.svg", "configs/rank-0.json",
                "configs/rank-3.json"]:
        assert (out / rel).is_file(), rel
    assert not (out / "configs" / "rank-4.json").exists()
    assert (out / "run").is_dir()
    scripts = list((out / "scripts").iterdir())
    assert scripts
    for s in scripts:
        if s.name.endswith((".sh", ".sbatch", ".pbs")):
            assert os.access(s, os.X_OK), s
    m = json.loads((out / "manifest.json").read_text())
    assert m["tool"]["name"] == "bedrock-deploy" and m["tool"]["version"]
    assert (m["site"], m["service"], m["nodes"], m["processes_per_node"]) == (
        "polaris", "mofka-like", 2, 4)
    roles = {i["role"] for i in m["inputs"]}
    assert {"site", "service"} <= roles
    for i in m["inputs"]:
        assert i["sha256"] == sha(Path(i["file"]))
    for rel, digest in m["files"].items():
        assert sha(out / rel) == digest, rel
    whats = [c["what"] for c in m["choices"]]
    assert "transport" in whats and "local rank 0 cores" in whats
    assert m["transport"]["protocol"] == "cxi://"
    cfg = json.loads((out / "configs" / "rank-0.json").read_text())
    assert cfg["margo"]["mercury"]["address"] == "cxi://"
    assert leftovers(tmp_path) == []


def test_overrides_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    res = generate("polaris", KV, out, nodes=3, ppn=1, account="P")
    assert (res.plan.nodes, res.plan.processes_per_node) == (3, 1)
    m = json.loads((out / "manifest.json").read_text())
    assert m["overrides"] == {"nodes": 3, "ppn": 1, "account": "P"}
    assert sorted(p.name for p in (out / "configs").iterdir()) == ["rank-0.json"]


def test_refuses_to_overwrite_without_force(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dep"
    assert main(["generate", *POLARIS, "--service", KV, "-o", str(out)]) == 0
    before = (out / "manifest.json").read_text()
    (out / "marker").write_text("old")
    assert main(["generate", *POLARIS, "--service", KV, "-o", str(out),
                 "--ppn", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == before and (out / "marker").exists()
    # --force replaces the whole directory (the marker goes), atomically
    assert main(["generate", *POLARIS, "--service", KV, "-o", str(out),
                 "--ppn", "1", "--force"]) == 0
    assert not (out / "marker").exists()
    assert json.loads((out / "manifest.json").read_text())["processes_per_node"] == 1
    assert leftovers(tmp_path) == []


def test_force_only_replaces_deployments(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(InputError, match="not a bedrock-deploy deployment"):
        generate("polaris", KV, precious, force=True, account="P")
    assert (precious / "thesis.tex").exists()


@pytest.mark.parametrize("args, text", [
    (["--service", "MISSING.yaml"], "file not found"),
    (["--ppn", "64"], "64 processes per node need at least 64 cores"),
    (["--nodes", "100000"], "the service wants 100000 nodes"),
    (["--ppn", "0"], "--ppn must be at least 1"),
])
def test_bad_input_leaves_no_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       args: list[str], text: str) -> None:
    out = tmp_path / "dep"
    argv = ["generate", *POLARIS, "--service", KV, "-o", str(out), *args]
    if args[0] == "--service":
        argv = ["generate", *POLARIS, *args, "-o", str(out)]
    assert main(argv) == 2
    assert text in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_service_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svc = tmp_path / "svc.yaml"
    svc.write_text("name: s\ncomponents:\n  - {name: g, type: flock, pool: fast}\n")
    out = tmp_path / "dep"
    assert main(["generate", *POLARIS, "--service", str(svc), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{svc}:3:" in err and "pool" in err
    assert not out.exists()


def test_generated_config_failing_validation_writes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "cxi-site.yaml"
    site.write_text("""name: tcxi
node:
  sockets: 1
  cores_per_socket: 8
  numa_domains: [{id: 0, cpus: "0-7"}]
  nics: [{name: cxi0, kind: cxi, numa_domain: 0}]
transports:
  - {name: cxi, protocol: "cxi://", nic_kind: cxi, provider: cxi, mercury: {auth_key: ""}}
scheduler: {type: slurm}
launcher: {type: srun}
""")
    out = tmp_path / "dep"
    with pytest.raises(InputError) as exc:
        generate(site, KV, out, ppn=1)
    (p,) = exc.value.problems
    assert "generated config of local rank 0: /margo/mercury/auth_key" in p.message
    assert "rule 10" in p.message
    assert not out.exists() and leftovers(tmp_path) == []


def test_write_tree_failure_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    with pytest.raises(OutputError, match="Not a directory"):
        write_tree({"a": "file", "a/b": "cannot: a is a file"}, out, force=False)
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_bedrock_json_service(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    res = generate("frontier", share_path("examples", "mofka-config.json"), out, ppn=2, account="P")
    cfg = json.loads((out / "configs" / "rank-1.json").read_text())
    assert cfg["providers"][0]["config"]["file"] == "mofka.json"
    assert cfg["margo"]["progress_pool"] == "progress_pool"
    assert "use_progress_thread" not in cfg["margo"]
    m = json.loads((out / "manifest.json").read_text())
    assert any(c["what"] == "service source" for c in m["choices"])
    assert res.plan.service.threads.rpc == 4


def test_host_reports_drive_the_transport(tmp_path: Path) -> None:
    # a Slingshot node where CXI did not initialise (no VNI): the deployment falls back to tcp
    data = Path(__file__).parent / "data" / "transports"
    report = data / "slingshot-node-no-vni.margo-info.txt"
    out = tmp_path / "dep"
    res = generate("polaris", MOFKA, out, margo_info=report, account="P")
    m = json.loads((out / "manifest.json").read_text())
    (inp,) = [i for i in m["inputs"] if i["role"] == "margo-info"]
    assert inp["sha256"] == sha(report)
    cfg = json.loads((out / "configs" / "rank-0.json").read_text())
    assert cfg["margo"]["mercury"]["address"] == res.plan.transport.protocol
    assert res.plan.transport.protocol != "cxi://"


def test_transport_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dep"
    assert main(["generate", *POLARIS, "--service", KV, "-o", str(out),
                 "--transport", "tcp"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["transport"]["name"] == "tcp" and m["overrides"]["transport"] == "tcp"
    assert main(["generate", *POLARIS, "--service", KV, "-o", str(tmp_path / "x"),
                 "--transport", "nope"]) == 2
    assert "no transport named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_yaml_naming_a_bedrock_config(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    generate("polaris", share_path("examples", "mofka-from-config.yaml"), out, account="P")
    m = json.loads((out / "manifest.json").read_text())
    roles = [i["role"] for i in m["inputs"]]
    assert "bedrock-config" in roles and "service" in roles
    cfg = json.loads((out / "configs" / "rank-0.json").read_text())
    assert [p["name"] for p in cfg["providers"]] == ["group_manager", "master", "data",
                                                     "io_controller"]
    assert sum(x["name"].startswith("rpc_") for x in cfg["margo"]["argobots"]["xstreams"]) == 2
