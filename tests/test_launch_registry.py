"""The launcher and scheduler registries: every registered class works end to end (profile
validation, JSON Schema, launch scripts, ``bedrock-deploy transports``), and a new launcher is
one class that nothing else has to name."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bedrock_deploy.cli import main
from bedrock_deploy.commands.sites import site_schema
from bedrock_deploy.launch import render_scripts
from bedrock_deploy.launch.launcher import (
    LAUNCHERS,
    LaunchCommand,
    Launcher,
    RenderTemplate,
    launcher_class,
    register_launcher,
)
from bedrock_deploy.launch.registry import UnknownName
from bedrock_deploy.launch.scheduler import SCHEDULERS, launchers_for, scheduler_class
from bedrock_deploy.site_profile import SiteProfile
from test_launch_render import make_plan, site_with

CXI = {"name": "cxi", "protocol": "cxi://", "nic_kind": "cxi", "provider": "cxi"}
TCP = {"name": "tcp", "protocol": "ofi+tcp://", "fabrics": ["tcp", "rxm"]}


def profile_file(tmp_path: Path, launcher: str, scheduler: str, **extra: Any) -> Path:
    """A small profile (JSON is YAML) with a Slingshot transport, so the VNI paths run too."""
    data = {"name": f"t-{launcher}", "node": {"sockets": 1, "cores_per_socket": 8,
                                             "numa_domains": [{"id": 0, "cpus": "0-7"}]},
            "transports": [CXI, TCP], "scheduler": {"type": scheduler},
            "launcher": {"type": launcher}, **extra}
    path = tmp_path / f"t-{launcher}.yaml"
    path.write_text(json.dumps(data))
    return path


def first_scheduler(launcher: str) -> str:
    return next(s for s in SCHEDULERS.names() if launcher in launchers_for(s))


def test_registries_hold_the_builtin_classes() -> None:
    assert {"srun", "mpiexec-pals", "mpirun-openmpi", "mpiexec-hydra", "flux-run"} <= set(
        LAUNCHERS.names())
    assert {"slurm", "pbs", "flux", "none"} <= set(SCHEDULERS.names())
    with pytest.raises(UnknownName, match=r"no launcher 'nope' \(registered: dragon, flux-run, "):
        launcher_class("nope")


@pytest.mark.parametrize("name", LAUNCHERS.names())
def test_every_launcher_is_complete(name: str) -> None:
    cls = launcher_class(name)
    assert cls.name == name and cls.description and cls.default_command
    assert cls.schedulers and cls.schedulers <= set(SCHEDULERS.names())
    assert cls.local_rank_variable()
    for scheduler in cls.schedulers:
        assert name in launchers_for(scheduler)


@pytest.mark.parametrize("name", LAUNCHERS.names())
def test_every_launcher_writes_a_job_script(name: str, tmp_path: Path) -> None:
    site, files = site_with("generic-slurm-tcp", launcher={"type": name},
                            scheduler={"type": first_scheduler(name)})
    plan = make_plan(site, files)
    rendered = render_scripts(plan)
    command = launcher_class(name)(plan).run_command()
    script = rendered[scheduler_class(site.scheduler.type).script]
    assert f'  "$DIR/{command.program}"\n' in script
    assert command.program in rendered  # rank-exec.sh, or the launcher's own driver
    for arg in command.argv:
        assert f"  {shlex.quote(arg)}\n" in script
    assert f"${command.local_rank_var} ({name})" in rendered["scripts/rank-exec.sh"]
    path = tmp_path / "job"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_writes_its_script(name: str) -> None:
    cls = scheduler_class(name)
    assert cls.description and cls.job_output
    site, files = site_with("generic-slurm-tcp", scheduler={"type": name},
                            launcher={"type": launchers_for(name)[0]})
    plan = make_plan(site, files)
    rendered = render_scripts(plan)
    script = rendered[cls.script]
    assert script.startswith("#!/usr/bin/env bash\n")
    directives = [f"{cls.prefix} {d}" for d in cls(plan).directives()]
    assert script.splitlines()[1:1 + len(directives)] == directives
    assert bool(directives) == cls.batch
    assert cls.job_output in rendered["run/logs/README"]
    if cls.batch:
        assert cls.status_argv("7") and cls.submit_argv(Path("/d"), Path("/d/l"), "kv", {})


@pytest.mark.parametrize("name", LAUNCHERS.names())
def test_transports_works_for_every_launcher(name: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`bedrock-deploy transports` once crashed with KeyError for a launcher its own table of
    launch commands did not list; it now asks the launcher."""
    cls = launcher_class(name)
    path = profile_file(tmp_path, name, first_scheduler(name))
    assert main(["transports", "--site", str(path), "--nodes", "2"]) == 0
    capsys.readouterr()
    assert main(["transports", "--site", str(path), "--nodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    probe = shlex.join([*cls.single_process_argv(load_profile(path)), *cls.cxi_vni_flags])
    assert any(f"{probe} margo-info" in note for note in report["notes"]), report["notes"]
    assert report["chosen"]["launcher_flags"] == list(cls.cxi_vni_flags)
    assert all(report["chosen"]["env"][k] == v for k, v in cls.cxi_vni_env.items())


def load_profile(path: Path) -> SiteProfile:
    from bedrock_deploy.sites import load_site

    return load_site(path).profile


def test_an_unknown_launcher_is_a_located_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = profile_file(tmp_path, "condor", "none")
    assert main(["sites", "validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    names = ", ".join(repr(n) for n in LAUNCHERS.names())
    assert err[0].startswith(f"{path}:1:")
    assert err[0].endswith(f"error: launcher.type: Input should be {names} (got 'condor')")
    assert err[1].startswith("    hint: use one of the allowed values")


def test_a_launcher_must_go_with_the_scheduler(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = profile_file(tmp_path, "srun", "pbs")
    assert main(["sites", "validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("error: launcher.type: launcher 'srun' does not go with "
                           "scheduler 'pbs'")
    assert err[1] == "    hint: use one of: " + ", ".join(sorted(launchers_for("pbs")))


# ---- a new launcher: one class (here defined in the test, normally one module) -------------
class ForkDriver(Launcher):
    """Runs a driver of its own on one host, which starts the ranks itself."""

    name = "test-fork"
    description = "test: a driver script that forks the ranks"
    default_command = "bash"
    rank_env = "openmpi"
    schedulers = frozenset({"none"})
    DRIVER: ClassVar[str] = "scripts/fork-driver.sh"

    def run_command(self) -> LaunchCommand:
        return self.command([self.executable], program=self.DRIVER,
                            program_args=(str(self.plan.processes_per_node),),
                            notes=("the driver starts rank-exec.sh once per local rank",))

    def driver_files(self, render: RenderTemplate) -> dict[str, str]:
        loop = ('for ((i = 0; i < $1; i++)); do OMPI_COMM_WORLD_LOCAL_RANK=$i '
                '"$(dirname "$0")/rank-exec.sh" & done; wait\n')
        return {self.DRIVER: "#!/usr/bin/env bash\n" + loop}

    @classmethod
    def single_process_argv(cls, site: SiteProfile) -> list[str]:
        return [cls.command_for(site), "-c"]


@pytest.fixture
def fork_launcher() -> Any:
    register_launcher(ForkDriver)
    yield ForkDriver
    LAUNCHERS.unregister(ForkDriver.name)


def test_a_new_launcher_needs_nothing_else(fork_launcher: Any, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = profile_file(tmp_path, "test-fork", "none")
    assert main(["sites", "validate", str(path)]) == 0  # the profile accepts it
    assert "test-fork" in site_schema()["$defs"]["Launcher"]["properties"]["type"]["enum"]
    assert "test-fork" in launchers_for("none")
    capsys.readouterr()
    assert main(["transports", "--site", str(path), "--json"]) == 0
    assert any("bash -c margo-info" in n for n in json.loads(capsys.readouterr().out)["notes"])
    site, files = site_with("local", launcher={"type": "test-fork"})
    rendered = render_scripts(make_plan(site, files, nodes=1))
    assert rendered[ForkDriver.DRIVER].startswith("#!/usr/bin/env bash\n")
    assert '  bash\n  "$DIR/scripts/fork-driver.sh"\n  2\n)' in rendered["scripts/run.sh"]


def test_a_name_is_registered_once(fork_launcher: Any) -> None:
    clash = type("Clash", (ForkDriver,), {})
    with pytest.raises(ValueError, match="two launchers are named 'test-fork'"):
        register_launcher(clash)


def test_a_driver_file_cannot_replace_a_deployment_file(fork_launcher: Any) -> None:
    LAUNCHERS.unregister("test-fork")
    register_launcher(type("Bad", (ForkDriver,), {"DRIVER": "scripts/rank-exec.sh"}))
    site, files = site_with("local", launcher={"type": "test-fork"})
    with pytest.raises(ValueError, match="needs its own path"):
        render_scripts(make_plan(site, files, nodes=1))


def test_the_run_line_runs_a_file_of_the_deployment(fork_launcher: Any) -> None:
    LAUNCHERS.unregister("test-fork")
    register_launcher(type("NoDriver", (ForkDriver,), {
        "driver_files": lambda self, render: {}}))
    site, files = site_with("local", launcher={"type": "test-fork"})
    with pytest.raises(ValueError, match="is not a file of the deployment"):
        render_scripts(make_plan(site, files, nodes=1))
