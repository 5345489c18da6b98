"""The public Python API, driven the way a workflow would: ``import bedrock_deploy as bd`` only.

Without the engine: what ``help(bd)`` shows, that every public name is documented with an
example, loading services from files, dicts, objects with ``to_dict()`` and code, plans, the
deployment directory, and bad input raising InputError with the file, line and hint.
With the compiled engine (and Open MPI for the flock group): the whole path on site ``local``
(load, plan, generate, launch, query every member, put/get keys, shut down, nothing left), the
context manager stopping on an error, a launch that fails, attaching to a service started by
hand, ``bd.up``; with the local Slurm: ``Deployment.submit``.

``tests/data/procspec-kv.json`` and ``procspec-default-id.json`` are what
``mochi.bedrock.spec.ProcSpec(margo="na+sm", ...).to_dict()`` returns with mochi-bedrock v0.16.1's
``python/mochi/bedrock/spec.py`` (https://github.com/mochi-hpc/mochi-bedrock/blob/v0.16.1/python/
mochi/bedrock/spec.py): two providers with ids 1 and 2, and one provider left at the default id
0 (Bedrock's own, refused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bedrock_deploy as bd
from live_processes import processes_naming as processes_of

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
KV = ROOT / "share" / "examples" / "kv-service.yaml"
PPN = 2


# ---- helpers --------------------------------------------------------------------------------


def answering(protocol: str, addresses: list[str]) -> list[str]:
    """Addresses whose engine still answers a ping (through the raw bindings)."""
    from bedrock_deploy.engine import bindings

    client = bindings().Client(protocol.split(":")[0])
    client.set_timeout_ms(1000)
    alive = []
    for address in addresses:
        try:
            client.ping(address)
            alive.append(address)
        except Exception:  # refused or timed out: it no longer answers
            pass
    return alive


def needs_engine(mpi: bool = True) -> None:
    """Skip (with the reason) when the compiled engine or Open MPI is missing."""
    from bedrock_deploy.engine import EngineNotFound, bindings, engine_dir

    try:
        bindings()
    except EngineNotFound as exc:
        pytest.skip(str(exc))
    d = engine_dir()
    if d is None or not (d / "bedrock-engine").is_file():
        pytest.skip("compiled engine not installed")
    if shutil.which("mpirun.openmpi") is None:
        pytest.skip("mpirun.openmpi (Open MPI) is not installed")
    if mpi and subprocess.run([sys.executable, "-c", "import bedrock_deploy.engine_mpi, mpi4py"],
                              capture_output=True).returncode != 0:
        pytest.skip("bedrock-engine-mpi (bedrock_deploy.engine_mpi + mpi4py) is not installed")


@pytest.fixture
def out(tmp_path: Path) -> Iterator[Path]:
    """A deployment directory; whatever a failed test left running there is killed by pid."""
    directory = tmp_path / "dep"
    yield directory
    for line in processes_of(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def kv_in_code() -> bd.LoadedService:
    return bd.service("kvcode", [bd.component("group", "flock"),
                                 bd.component("kv", "yokan",
                                              config={"database": {"type": "map"}})],
                      processes_per_node=PPN, threads={"rpc": 1},
                      placement={"too_few_cores": "share"})


# ---- the API as a module --------------------------------------------------------------------
def test_help_shows_the_api() -> None:
    done = subprocess.run([sys.executable, "-c", "import bedrock_deploy as bd; help(bd)"],
                          capture_output=True, text=True, env={**os.environ, "PAGER": "cat"},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for name in ("plan(site", "generate(plan", "load_service(source", "load_site(name_or_path",
                 "up(service", "class Deployment", "class RunningService", "class Client",
                 "class Database", "class InputError", "class ServiceError"):
        assert name in text, name


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    missing = []
    for name in bd.__all__:
        if name == "__version__":
            continue
        doc = inspect.getdoc(getattr(bd, name)) or ""
        if "Example" not in doc:
            missing.append(name)
    assert missing == []
    assert isinstance(bd.__version__, str) and bd.__version__


def test_public_methods_are_documented() -> None:
    undocumented = []
    for cls in (bd.Deployment, bd.RunningService, bd.Client, bd.ServiceHandle,
                bd.ServiceGroupHandle, bd.Database, bd.DeploymentPlan):
        for name, member in vars(cls).items():
            if name.startswith("_") or not (callable(member) or isinstance(member, property)):
                continue
            if not (getattr(member, "__doc__", None) or "").strip():
                undocumented.append(f"{cls.__name__}.{name}")
    assert undocumented == []


def test_import_is_lazy_and_names_stay_functions() -> None:
    code = ("import sys, bedrock_deploy as bd\n"
            "assert 'bedrock_deploy.generate' not in sys.modules, 'eager import'\n"
            "import bedrock_deploy.plan, bedrock_deploy.generate, bedrock_deploy.up\n"
            "import bedrock_deploy.service\n"
            "from bedrock_deploy.plan import DeploymentPlan\n"
            "assert callable(bd.plan) and bd.plan.__module__ == 'bedrock_deploy.api'\n"
            "for f in (bd.generate, bd.up, bd.service):\n"
            "    assert f.__module__ == 'bedrock_deploy.api', f\n"
            "assert sys.modules['bedrock_deploy.plan'].DeploymentPlan is bd.DeploymentPlan\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ---- loading ---------------------------------------------------------------------------------
def test_load_service_from_a_file_a_dict_and_code() -> None:
    from_file = bd.load_service(KV)
    assert from_file.service.name == "kv" and not from_file.in_memory
    data = {"name": "kv2", "processes_per_node": 3,
            "components": [{"name": "kv", "type": "yokan"}]}
    from_dict = bd.load_service(data)
    assert from_dict.in_memory and from_dict.service.processes_per_node == 3
    assert data == {"name": "kv2", "processes_per_node": 3,
                    "components": [{"name": "kv", "type": "yokan"}]}  # not modified
    assert bd.load_service(from_dict.service).service == from_dict.service
    assert bd.load_service(KV, name="renamed").service.name == "renamed"
    svc = kv_in_code().service
    assert [c.name for c in svc.components] == ["group", "kv"]
    assert svc.provider_ids() == {"group": 1, "kv": 2}


def test_load_service_from_a_procspec_dict_and_object() -> None:
    spec = json.loads((DATA / "procspec-kv.json").read_text())
    loaded = bd.load_service(spec, name="kvspec")
    svc = loaded.service
    assert loaded.kind == "bedrock-json" and svc.name == "kvspec"
    assert [(c.name, c.type, c.provider_id) for c in svc.components] == [
        ("group", "flock", 1), ("kv", "yokan", 2)]
    assert any("kept libraries and providers" in n for n in loaded.notes)

    class ProcSpecLike:  # what mochi.bedrock.spec.ProcSpec offers: to_dict()
        def to_dict(self) -> dict[str, Any]:
            return spec

    assert bd.load_service(ProcSpecLike()).service.components == svc.components
    assert bd.load_service(ProcSpecLike()).service.name == "service"
    # with this service's threads and placement around it
    wrapped = bd.service("kv", bedrock_config=ProcSpecLike(), threads={"rpc": 2},
                         placement={"smt": "use"})
    assert wrapped.service.components == svc.components
    assert wrapped.service.threads.rpc == 2 and wrapped.service.placement.smt.value == "use"
    assert not wrapped.extra_files


def test_procspec_default_provider_id_is_refused_with_the_key_and_a_hint() -> None:
    spec = json.loads((DATA / "procspec-default-id.json").read_text())
    with pytest.raises(bd.InputError) as info:
        bd.load_service(spec)
    [problem] = info.value.problems
    text = problem.format()
    assert text.startswith("<service>: error: providers[0].provider_id:"), text
    assert problem.hint and "0 is Bedrock's own" in problem.hint


def test_bad_service_file_raises_with_file_line_and_hint(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: kv\ncomponents:\n  - name: kv\n    type: yokan\n    poool: rpc\n")
    with pytest.raises(bd.InputError) as info:
        bd.load_service(bad)
    [problem] = info.value.problems
    assert problem.location is not None
    assert (problem.location.file, problem.location.line) == (str(bad), 5)
    assert problem.hint == "did you mean 'pool'?"
    assert str(info.value).startswith(f"{bad}:5:5: error: components[0].poool: unknown key")


def test_bad_site_file_raises_with_file_line_and_hint(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("name: mysite\nextends: local\nscheduler:\n  type: slurmm\n")
    with pytest.raises(bd.InputError) as info:
        bd.plan(site, KV)
    problem = info.value.problems[0]
    assert problem.location is not None and problem.location.file == str(site)
    assert problem.location.line == 4 and problem.hint


def test_bad_component_in_code_names_the_key() -> None:
    with pytest.raises(bd.InputError) as info:
        bd.component("kv", "yokan", pool="fast")
    [problem] = info.value.problems
    assert problem.format().startswith("<component>: error: pool:")
    with pytest.raises(bd.InputError) as info:
        bd.service("kv", [bd.component("kv", "yokan"), bd.component("kv", "flock")])
    assert "already used" in str(info.value) and "components[1].name" in str(info.value)


def test_load_site_by_name_and_object() -> None:
    site = bd.load_site("polaris")
    assert site.profile.name == "polaris" and site.files[0].endswith("polaris.yaml")
    assert bd.load_site(site) is site
    with pytest.raises(bd.InputError) as info:
        bd.load_site("no-such-site")
    assert "no site profile" in str(info.value) and info.value.problems[0].hint


# ---- plan and generate ----------------------------------------------------------------------
def test_plan_is_read_only_and_explains_its_choices() -> None:
    plan = bd.plan("polaris", KV, nodes=2, ppn=4, account="P")  # ALCF requires an account
    assert isinstance(plan, bd.DeploymentPlan)
    assert plan.total_processes == 8 and len(plan.configs) == 4
    assert len(plan.layout.ranks) == 4
    assert plan.transport.protocol and plan.transport.reason
    transport = plan.choice("transport")
    assert transport is not None and transport.why == plan.transport.reason
    assert all(c.why for c in plan.choices)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.configs = []  # type: ignore[misc]
    with pytest.raises(bd.InputError) as info:
        bd.plan("polaris", KV, ppn=0)
    assert info.value.problems[0].format().startswith("--ppn: error:")


def test_generate_writes_the_deployment_and_open_reads_it(tmp_path: Path) -> None:
    plan = bd.plan("local", kv_in_code(), nodes=1)
    deployment = bd.generate(plan, tmp_path / "dep")
    assert deployment.plan is plan and deployment.directory == (tmp_path / "dep").absolute()
    again = bd.Deployment.open(tmp_path / "dep")
    assert (again.service, again.site, again.total_processes) == ("kvcode", "local", PPN)
    assert again.scheduler == "none" and again.script.name == "run.sh"
    assert again.group_file == again.directory / "run" / "group.json"
    assert again.configs == plan.configs
    assert "manifest.json" in again.files and "configs/rank-0.json" in again.files
    assert [c.what for c in again.choices] == [c.what for c in plan.choices]
    # a service given as Python data is recorded whole in the manifest
    [entry] = [i for i in again.manifest["inputs"] if i["role"] == "service"]
    assert entry["file"] is None and entry["source"] == "<service>"
    assert entry["description"]["name"] == "kvcode" and len(entry["sha256"]) == 64
    # an existing directory is refused (nothing replaced) unless force
    with pytest.raises(bd.InputError) as info:
        bd.generate(plan, tmp_path / "dep")
    assert "already exists" in str(info.value) and info.value.problems[0].hint
    assert bd.generate(plan, tmp_path / "dep", force=True).directory == again.directory


def test_open_refuses_a_directory_that_is_not_a_deployment(tmp_path: Path) -> None:
    with pytest.raises(bd.InputError) as info:
        bd.Deployment.open(tmp_path)
    assert "not a deployment directory" in str(info.value)


def test_launch_refuses_a_batch_site(tmp_path: Path) -> None:
    deployment = bd.generate(bd.plan("local-slurm", KV, nodes=1, ppn=PPN), tmp_path / "dep")
    with pytest.raises(bd.InputError) as info:
        deployment.launch()
    assert "scheduler 'slurm'" in str(info.value) and "submit()" in str(info.value)
    cmd = deployment.submit_command(duration=5)
    assert cmd.argv[0] == "sbatch" and cmd.extra["SERVICE_DURATION"] == "5"
    assert not list((tmp_path / "dep" / "run").glob("*.json"))


# ---- the whole path with the engine ---------------------------------------------------------
def _service(source: str) -> bd.LoadedService:
    if source == "yaml-file":
        return bd.load_service(KV)
    if source == "procspec":  # ProcSpec(...).to_dict(), its margo planned for this host
        return bd.service("kv", bedrock_config=json.loads((DATA / "procspec-kv.json")
                                                          .read_text()),
                          placement={"too_few_cores": "share"})
    return kv_in_code()


@pytest.mark.engine
@pytest.mark.mpi
@pytest.mark.parametrize("source", ["yaml-file", "procspec", "in-code"])
def test_whole_path_through_the_api(out: Path, source: str) -> None:
    needs_engine()
    site = bd.load_site("local")
    plan = bd.plan(site, _service(source), nodes=1, ppn=PPN)
    deployment = bd.generate(plan, out)
    with deployment.launch(timeout=120) as running:
        members = running.members
        assert [m.rank for m in members] == list(range(PPN))
        addresses = [m.address for m in members]
        assert len(set(addresses)) == PPN and all(m.provider_id == 1 for m in members)
        # query every member: rank, size, pid of a live engine, xstreams pinned as planned
        reports = running.query()
        assert [r["bedrock_engine"]["rank"] for r in reports] == list(range(PPN))
        pids = [r["bedrock_engine"]["pid"] for r in reports]
        assert len(set(pids)) == PPN and all(Path(f"/proc/{p}").exists() for p in pids)
        for rank, report in enumerate(reports):
            assert report["bedrock_engine"]["size"] == PPN
            planned = {x["name"]: sorted(x.get("affinity") or [x["cpubind"]])
                       for x in plan.configs[rank]["margo"]["argobots"]["xstreams"]
                       if x.get("affinity") or "cpubind" in x}
            actual = {x["name"]: sorted(x["cpus"]) for x in report["bedrock_engine"]["xstreams"]}
            for name, cpus in planned.items():
                assert actual[name] == cpus, (rank, name)
        assert running.query(rank=1)["bedrock_engine"]["pid"] == pids[1]
        # keys through every member's own database
        for rank in range(PPN):
            db = running.database(rank=rank)
            for i in range(20):
                db.put(f"r{rank}/k{i:02d}", f"value {rank} {i}")
            assert db.get(f"r{rank}/k07") == f"value {rank} 7".encode()
            assert db.get("missing") is None
            assert len(db.list(f"r{rank}/")) == 20
            assert db.erase(f"r{rank}/k00") and not db.erase(f"r{rank}/k00")
            assert f"r{rank}/k00" not in db and f"r{rank}/k01" in db
        # the same through a client made from the group file, as another program would
        client = bd.Client(deployment.protocol)
        group = client.make_service_group_handle(deployment.group_file)
        assert [h.address for h in group] == addresses
        assert sorted(group.config) == sorted(addresses)
        assert group[1].database("kv").get("r1/k05") == b"value 1 5"
        assert len(group[0].flock_view()["members"]) == PPN
        with pytest.raises(bd.RpcError) as info:
            group[0].database(99).get("k")
        assert info.value.address == addresses[0] and info.value.call == "get"
    result = running.stop_result
    assert result is not None and result.clean, result
    assert result.script_status == 0 and not result.leftover
    assert processes_of(deployment.directory) == []
    assert answering(deployment.protocol, addresses) == []
    assert all(not Path(f"/proc/{p}").exists() for p in pids)
    assert running.shutdown() is result  # idempotent


@pytest.mark.engine
@pytest.mark.mpi
def test_context_manager_stops_the_service_when_the_block_fails(out: Path) -> None:
    needs_engine()
    deployment = bd.generate(bd.plan("local", kv_in_code(), nodes=1), out)
    with pytest.raises(KeyError), deployment.launch() as running:
        addresses = running.addresses
        with pytest.raises(bd.ServiceError) as info:  # one run of a deployment at a time
            deployment.launch()
        assert "is still alive" in str(info.value)
        assert running.ready
        raise KeyError("the workflow failed")
    assert running.stop_result is not None and running.stop_result.clean
    assert processes_of(deployment.directory) == []
    assert answering(deployment.protocol, addresses) == []


@pytest.mark.engine
@pytest.mark.mpi
def test_a_launch_that_fails_raises_with_the_log_and_leaves_nothing(out: Path) -> None:
    needs_engine(mpi=False)
    deployment = bd.generate(bd.plan("local", kv_in_code(), nodes=1), out)
    env = {"BEDROCK_DEPLOY_ENGINE_DIR": str(out.parent / "nowhere")}
    with pytest.raises(bd.ServiceError) as info:
        deployment.launch(env=env, timeout=60)
    assert "ended" in str(info.value) and "before the service was ready" in str(info.value)
    assert f"no {out.parent / 'nowhere'}/bedrock-engine" in info.value.details
    assert info.value.hint and "run/logs" in info.value.hint
    assert processes_of(deployment.directory) == []


@pytest.mark.engine
@pytest.mark.mpi
def test_attach_to_a_service_started_by_hand(out: Path) -> None:
    needs_engine()
    deployment = bd.generate(bd.plan("local", kv_in_code(), nodes=1), out)
    script = subprocess.Popen(["bash", str(deployment.script)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with deployment.attach() as running:
            members = running.wait_ready(timeout=120)
            assert len(members) == PPN
            running.database(rank=0).put("k", "v")
            assert running.database(rank=0).get("k") == b"v"
        result = running.stop_result
        assert result is not None and result.clean and not result.launched, result
        assert script.wait(timeout=60) == 0  # the script saw its engines finalize
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert processes_of(deployment.directory) == []


@pytest.mark.engine
@pytest.mark.mpi
def test_up_returns_a_running_service(out: Path) -> None:
    needs_engine()
    with bd.up(ppn=PPN, directory=out) as running:
        assert running.deployment.directory == out.absolute()
        assert len(running.members) == PPN
        running.database(rank=1).put(b"\x00binary", b"\xff")
        assert running.database(rank=1).get(b"\x00binary") == b"\xff"
    assert running.stop_result is not None and running.stop_result.clean
    assert processes_of(out.absolute()) == []


@pytest.mark.engine
@pytest.mark.slurm
def test_submit_to_slurm_returns_a_running_service(out: Path, local_slurm: str) -> None:
    needs_engine()
    deployment = bd.generate(bd.plan("local-slurm", KV, nodes=1, ppn=PPN), out)
    with deployment.submit(timeout=300) as running:
        assert isinstance(running.process, bd.BatchJob)
        job = running.process.job_id
        assert [r["bedrock_engine"]["rank"] for r in running.query()] == list(range(PPN))
        running.database(rank=0).put("k", "v")
        assert running.database(rank=0).get("k") == b"v"
        addresses = running.addresses
    result = running.stop_result
    assert result is not None and result.clean, result
    final = running.process.status()
    assert final.finished and final.state == "COMPLETED", final
    squeue = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
    assert job not in squeue.stdout
    end = time.monotonic() + 20
    while processes_of(deployment.directory) and time.monotonic() < end:
        time.sleep(0.2)
    assert processes_of(deployment.directory) == []
    assert answering(deployment.protocol, addresses) == []


def test_a_typed_workflow_type_checks_and_misuse_does_not(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    good = tmp_path / "good.py"
    good.write_text(
        "import bedrock_deploy as bd\n"
        "plan: bd.DeploymentPlan = bd.plan('local', 'svc.yaml', ppn=2)\n"
        "dep: bd.Deployment = bd.generate(plan, 'deploy', force=True)\n"
        "with dep.launch(timeout=60) as running:\n"
        "    one: dict[str, object] = running.query(rank=0)\n"
        "    every: list[dict[str, object]] = running.query()\n"
        "    value: bytes | None = running.database(rank=0).get('k')\n"
        "    members: list[bd.Member] = running.members\n"
        "result: bd.StopResult | None = running.stop_result\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import bedrock_deploy as bd\n"
                   "bd.plann('local', 'svc.yaml')\n"
                   "bd.generate(bd.plan('local', 'svc.yaml'), 'deploy', force='yes')\n"
                   "x: str = bd.Deployment.open('d').launch().query(rank=0)\n")
    env = {**os.environ, "MYPYPATH": str(ROOT / "generator")}
    argv = [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
            "--cache-dir", str(tmp_path / "cache"), "--config-file", os.devnull]
    done = subprocess.run([*argv, str(good)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([*argv, str(bad)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 1
    assert 'Module has no attribute "plann"' in done.stdout
    assert 'incompatible type "str"; expected "bool"' in done.stdout
    assert "Incompatible types in assignment" in done.stdout


def _readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    return code.replace('"share/examples/kv-service.yaml"', repr(str(KV)))


def _package_example() -> str:
    import textwrap

    doc = bd.__doc__ or ""
    block = doc.split("Example (this host, site ``local``)::\n", 1)[1].split("\n\n", 2)
    return textwrap.dedent("\n\n".join(block[:2])) + "\nprint('done')\n"


@pytest.mark.engine
@pytest.mark.mpi
@pytest.mark.parametrize("where", ["README", "package docstring"])
def test_the_documented_examples_run(tmp_path: Path, where: str) -> None:
    needs_engine()
    code = _readme_example() if where == "README" else _package_example()
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 0, code + done.stdout + done.stderr
        assert "transport" in done.stdout
        assert ("StopResult(script_status=0" if where == "README" else "done") in done.stdout
    finally:
        for line in processes_of(tmp_path / "deploy"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    assert processes_of(tmp_path / "deploy") == []


def test_plan_refuses_a_job_without_the_account_the_site_requires() -> None:
    with pytest.raises(bd.InputError) as info:
        bd.plan("polaris", KV, nodes=2)
    assert "requires an account" in info.value.problems[0].message
    assert bd.plan("polaris", KV, nodes=2, for_job=False).nodes == 2  # a layout only
    assert bd.plan("polaris", KV, nodes=2, account="P").choice("queue") is not None
