"""The emulated site a rehearsal runs in, written under ``DIR/run/rehearsal/``:

``context.json``   what every emulated tool needs (site facts from the profile, the CPU map,
                   the test cluster, the real commands behind the emulated ones)
``bin/``           the login node's commands: the scheduler's (``qsub``/``qstat``/``qdel``, or
                   ``sbatch`` in front of the real one)
``site-bin/``      what the site's login environment puts on ``PATH`` in a job: its launcher
                   (PALS ``mpiexec``, Cray ``srun``)
``etc/profile``    the site's login environment (``PATH``, the ``module`` command), bound over
                   ``/etc/profile`` for the job's login shell only (a private mount namespace)
``spack-view/bin`` the environment's ``bedrock``, ``bedrock-query``, ``bedrock-shutdown``: the
                   embedded engine with the site's fabric emulated
``home/``          the job user's home (empty: no personal profile)
``events.jsonl``   the checks the emulated tools made (read back by :mod:`.run`)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_deploy.rehearse.common import CONTEXT_FILE

# Launchers and schedulers the rehearsal emulates, and how (one entry each: a new one is one
# more entry here plus its module).
EMULATED_SCHEDULERS = {"pbs": ("qsub", "qstat", "qdel"), "slurm": ("sbatch",), "none": ()}
# launcher -> (emulated tool, the schedulers it is emulated under)
EMULATED_LAUNCHERS = {"mpiexec-pals": ("mpiexec", {"pbs"}), "srun": ("srun", {"slurm"}),
                      "mpirun-openmpi": ("ompi-mpirun", {"pbs"})}
VNI_BASE = 4000  # emulated VNIs: the job's from VNI_BASE, applications' from VNI_BASE + 1000
SERVICE_ID = 6  # the CXI service id the emulated launchers hand out with a VNI


@dataclass(frozen=True)
class ClusterInfo:
    """The running test cluster (tests/cluster/cluster.sh, docs/test-cluster.md)."""

    run: Path
    slurm_conf: Path
    nodes: list[str]
    partition: str = "cluster"
    iface: str = "bdc0"


def fabric_of(protocol: str) -> str:
    """``"ofi+verbs;ofi_rxm://"`` -> ``"verbs"``, ``"psm2+psm2://"`` -> ``"psm2"``."""
    head = protocol.split("://", 1)[0]
    if head.startswith("ofi+"):
        head = head[4:]
    head = head.split(";", 1)[0]
    return head.split("+", 1)[0]


ENGINE_FABRICS = {"tcp", "sm"}  # what the embedded engine implements itself


def declared_modules(site: Any) -> list[str]:
    mods = list(site.spack.modules)
    for c in site.spack.compilers:
        mods += list(c.modules)
    for e in site.spack.externals:
        mods += list(e.modules)
    return list(dict.fromkeys(mods))


def site_scheduler_facts(site: Any) -> dict[str, Any]:
    """The scheduler facts of the profile the emulated scheduler checks (queue table, account
    rule). Read by name: profiles without a queue table or account rule have none."""
    s = site.scheduler
    queues = []
    for q in getattr(s, "queues", None) or []:
        queues.append({"name": q.name, "option": str(getattr(q, "option", "queue")),
                       "min_nodes": getattr(q, "min_nodes", 1),
                       "max_nodes": getattr(q, "max_nodes", None),
                       "max_walltime": getattr(q, "max_walltime", None),
                       "auto": getattr(q, "auto", True)})
    return {"type": s.type, "partition": s.partition, "account": s.account,
            "account_required": bool(getattr(s, "account_required", False)),
            "account_error": getattr(s, "account_error", None),
            "login_shell": bool(getattr(s, "login_shell", False)),
            "queues": queues}


def cpu_map(site_cpus: int, host_cpus: list[int]) -> list[int]:
    """Site CPU c runs on host CPU ``host_cpus[c mod len(host_cpus)]`` (docs/rehearse.md):
    deterministic, and every host CPU is used."""
    return [host_cpus[c % len(host_cpus)] for c in range(site_cpus)]


def node_facts(site: Any) -> dict[str, Any]:
    from bedrock_deploy.topology import Topology

    node = site.node
    topo = Topology.from_node(node)
    cpus = sorted({c for core in topo.cores for c in core.cpus})
    return {"cpus": (max(cpus) + 1) if cpus else 1, "threads_per_core": node.threads_per_core,
            "sockets": node.sockets, "core_cpus": [list(core.cpus) for core in topo.cores]}


def write(directory: Path, *, deployment: Any, site: Any, cluster: ClusterInfo,
          run_nodes: int, engine_dir: Path, preload: str) -> dict[str, Any]:
    """Write the emulated site under ``directory`` (``DIR/run/rehearsal``); returns the
    context."""
    from bedrock_deploy.sites import load_site

    if directory.exists():
        shutil.rmtree(directory)
    for sub in ("bin", "site-bin", "etc", "spack-view/bin", "home", "jobs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    host_cpus = sorted(os.sched_getaffinity(0))
    node = node_facts(site)
    cluster_site = load_site("local-cluster").profile
    fabric = fabric_of(deployment.protocol)
    fabric_env = ({} if fabric in ENGINE_FABRICS else
                  {"BEDROCK_ENGINE_EMULATED_FABRICS": fabric,
                   "BEDROCK_ENGINE_EMULATED_IFACE": cluster.iface})
    node_env = {**cluster_site.launcher.env, **fabric_env, "FI_TCP_IFACE": cluster.iface}
    cxi = [n.name for n in site.node.nics if str(n.kind) == "cxi"]
    real = {t: shutil.which(t) or f"/usr/bin/{t}"
            for t in ("sbatch", "srun", "scontrol", "scancel", "squeue")}
    context = {
        "version": 1, "deployment": str(deployment.directory), "site": site.name,
        "python": sys.executable, "scheduler": deployment.scheduler,
        "launcher": deployment.launcher, "protocol": deployment.protocol, "fabric": fabric,
        "site_nodes": deployment.nodes, "run_nodes": run_nodes, "ppn":
        deployment.processes_per_node, "site_node": node, "site_scheduler":
        site_scheduler_facts(site), "modules": declared_modules(site),
        "cpu_map": cpu_map(node["cpus"], host_cpus), "host_cpus": host_cpus,
        "cxi_devices": cxi, "svc_id": SERVICE_ID, "vni_base": VNI_BASE,
        "node_env": node_env, "fabric_env": fabric_env, "preload": preload,
        "engine_dir": str(engine_dir), "real": real,
        "cluster": {"run": str(cluster.run), "slurm_conf": str(cluster.slurm_conf),
                    "nodes": cluster.nodes, "partition": cluster.partition,
                    "iface": cluster.iface, "mpi": cluster_site.launcher.mpi or "pmix"},
    }
    ctx_path = directory / CONTEXT_FILE
    ctx_path.write_text(json.dumps(context, indent=1))
    tool = [sys.executable, "-m", "bedrock_deploy.rehearse.tool", str(ctx_path)]
    header = f"# {{what}} of site {site.name}, emulated by bedrock-deploy rehearse\n"

    def script(path: Path, body: str, what: str) -> None:
        path.write_text("#!/bin/bash\n" + header.format(what=what) + body)  # bash: keeps
        # exported functions (BASH_FUNC_module%%), which dash drops from the environment
        path.chmod(0o755)

    for name in EMULATED_SCHEDULERS.get(deployment.scheduler, ()):
        script(directory / "bin" / name, f'exec {shlex.join(tool)} {name} "$@"\n', name)
    launcher, under = EMULATED_LAUNCHERS.get(deployment.launcher, ("", set()))
    if launcher and deployment.scheduler in under:
        from bedrock_deploy.launch.launcher import launcher_class

        command = site.launcher.command or launcher_class(deployment.launcher).default_command
        script(directory / "site-bin" / command, f'exec {shlex.join(tool)} {launcher} "$@"\n',
               f"{deployment.launcher} ({command})")
    module_fn = f'eval "$({shlex.join(tool)} module "$@")"'
    (directory / "etc" / "profile").write_text(
        header.format(what="the login environment")
        + "# (bound over /etc/profile for the job's login shell: its PATH and module command)\n"
        + f"PATH={shlex.quote(str(directory / 'site-bin'))}:/usr/local/bin:/usr/bin:/bin\n"
        + "export PATH\n"
        + f"module() {{ {module_fn}; }}\n"
        + "ml() { module \"$@\"; }\n"
        + '[ -z "${BASH_VERSION:-}" ] || export -f module ml\n')
    view = directory / "spack-view" / "bin"
    py = shlex.quote(sys.executable)
    record = f"{shlex.join(tool)} tool-ran"
    engine = shlex.quote(str(engine_dir / "bedrock-engine"))
    script(view / "bedrock", (
        f"{record} bedrock || true\n"
        "# flock's MPI bootstrap needs MPI: the embedded engine's MPI entry point\n"
        'cfg=""; prev=""\n'
        'for a in "$@"; do [ "$prev" = -c ] && cfg=$a; prev=$a; done\n'
        'if [ -n "$cfg" ] && grep -q \'"bootstrap"[[:space:]]*:[[:space:]]*"mpi"\' "$cfg"; then\n'
        f'  exec {py} -m bedrock_deploy.engine_mpi "$@"\n'
        "fi\n"
        f'exec {engine} "$@"\n'), "bedrock (Spack-built, stood in by the embedded engine)")
    for name, real_tool in (("bedrock-query", "bedrock-engine-query"),
                            ("bedrock-shutdown", "bedrock-engine-shutdown")):
        script(view / name, f"{record} {name} || true\n"
               f'exec {shlex.quote(str(engine_dir / real_tool))} "$@"\n',
               f"{name} (Spack-built, stood in by the embedded engine)")
    return context


def standin_spack_root() -> Path:
    """The stand-in Spack (``share/rehearse/spack``): generate with ``SPACK_ROOT`` set to it,
    or to any path: a rehearsal binds the stand-in over the ``SPACK_ROOT`` a job script
    records (:func:`job_prefix`)."""
    from bedrock_deploy.resources import share_path

    return share_path("rehearse", "spack")


_RECORDED_SPACK_ROOT = re.compile(r"^SPACK_ROOT=\$\{SPACK_ROOT:-(.*)\}\s*$", re.M)


def recorded_spack_root(script_text: str) -> str:
    """The SPACK_ROOT a generated job script falls back to (``SPACK_ROOT=${SPACK_ROOT:-...}``)."""
    m = _RECORDED_SPACK_ROOT.search(script_text)
    if not m:
        return ""
    try:
        words = shlex.split(m.group(1))
    except ValueError:
        return ""
    return words[0] if words else ""


# Runs in the job's own mount namespace (nothing of it is seen outside): the site's login
# environment over /etc/profile for a login shell, the stand-in Spack over the SPACK_ROOT the
# script records (on an overlay of its nearest existing parent when that path is not here).
_JOB_NAMESPACE = r"""
set -e
profile=$1 standin=$2 recorded=$3 scratch=$4; shift 4
[ -z "$profile" ] || mount --bind "$profile" /etc/profile
if [ -n "$recorded" ] && [ "$recorded" != "$standin" ] && [ "${recorded#/}" != "$recorded" ]; then
  if [ ! -d "$recorded" ]; then
    parent=$recorded
    while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
    if [ "$parent" != / ]; then
      mkdir -p "$scratch/upper" "$scratch/work"
      mount -t overlay overlay \
        -o "lowerdir=$parent,upperdir=$scratch/upper,workdir=$scratch/work" "$parent"
      mkdir -p "$recorded"
    fi
  fi
  [ ! -d "$recorded" ] || mount --bind "$standin" "$recorded"
fi
exec "$@"
"""


def job_prefix(directory: Path, *, login: bool, script_text: str, scratch: Path) -> list[str]:
    """The words that start a job's shell in its own mount namespace (see _JOB_NAMESPACE)."""
    # bash, not sh: dash drops exported shell functions (BASH_FUNC_module%%) from the environment
    return ["unshare", "--mount", "--propagation", "private", "bash", "-c", _JOB_NAMESPACE, "sh",
            str(directory / "etc" / "profile") if login else "", str(standin_spack_root()),
            recorded_spack_root(script_text), str(scratch)]


def submit_environment(directory: Path, context: dict[str, Any]) -> dict[str, str]:
    """The user's login shell on the site's login node: the scheduler's commands first on
    PATH, the test cluster's Slurm configuration, and for Slurm (which exports the submitting
    environment into the job) the site's launcher, the module command and Spack set up as a
    user of the site has them."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "PBS_", "BASH_FUNC_",
                                "BEDROCK_DEPLOY_", "BEDROCK_REHEARSAL_", "BEDROCK_ENGINE_",
                                "SLINGSHOT_", "PALS_", "PMI_", "OMPI_", "PMIX_"))}
    env["SLURM_CONF"] = context["cluster"]["slurm_conf"]
    path = [str(directory / "bin")]
    if context["scheduler"] == "slurm":
        path.append(str(directory / "site-bin"))
        tool = shlex.join([sys.executable, "-m", "bedrock_deploy.rehearse.tool",
                           str(directory / CONTEXT_FILE)])
        env["BASH_FUNC_module%%"] = f'() {{  eval "$({tool} module "$@")"\n}}'
        env["SPACK_ROOT"] = str(standin_spack_root())
    env["PATH"] = ":".join([*path, env.get("PATH", "/usr/bin:/bin")])
    env.update(rehearsal_env(directory))
    return env


def rehearsal_env(directory: Path) -> dict[str, str]:
    """How the stand-ins inside a job find the rehearsal (set in every emulated job)."""
    return {"BEDROCK_REHEARSAL_CONTEXT": str(directory / CONTEXT_FILE),
            "BEDROCK_REHEARSAL_PYTHON": sys.executable}
