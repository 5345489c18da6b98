"""``generate``: build the :class:`~bedrock_deploy.plan.DeploymentPlan` and write the directory.

Steps: load the site profile and the service (YAML or an existing Bedrock JSON), apply
``--nodes``/``--ppn``, select the transport, plan the node layout, emit one Bedrock config per
local rank, validate every config (any error aborts: nothing is written), render the Spack
environment, launch scripts and layout picture, and write everything into a temporary
directory next to the target which is then renamed into place (an existing deployment is
swapped atomically with ``renameat2(RENAME_EXCHANGE)`` under ``--force``). The deployment
directory contract is in :mod:`bedrock_deploy.plan`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bedrock_deploy import __version__, json_source
from bedrock_deploy.bedrock_config import bedrock_config
from bedrock_deploy.bedrock_validator import ConfigIssue, validate_deployment
from bedrock_deploy.cpulist import format_cpulist
from bedrock_deploy.diagnostics import (
    InputError,
    KeyPath,
    OutputError,
    Problem,
    SourceLocation,
    fail,
)
from bedrock_deploy.files import DIRECTORY_MODE, EXECUTABLE_MODE, FILE_MODE, is_file
from bedrock_deploy.freshness import freshness_warning
from bedrock_deploy.input_changes import InputChange, input_changes
from bedrock_deploy.launch import render_scripts
from bedrock_deploy.layout import plan_layout
from bedrock_deploy.layout_picture import render_svg
from bedrock_deploy.layout_policies import MERGING_POLICIES, RankShape
from bedrock_deploy.limits import NODE_XSTREAMS
from bedrock_deploy.plan import (
    CONFIG_DIR,
    GROUP_FILE,
    RUN_DIR,
    Choice,
    DeploymentPlan,
    NodeLayout,
    TransportChoice,
    config_name,
)
from bedrock_deploy.queues import resolve_scheduler
from bedrock_deploy.service import LoadedService, ServiceDescription, load_service
from bedrock_deploy.site_profile import EngineKind, TransportScope
from bedrock_deploy.sites import LoadedSite, load_site
from bedrock_deploy.spack_env import render_spack_env
from bedrock_deploy.topology import Topology
from bedrock_deploy.transports import HostReports, select_transport
from bedrock_deploy.transports.host_reports import find_engine

MANIFEST = "manifest.json"
# What makes a directory a deployment --force may replace: its manifest.json says it was written
# by bedrock-deploy ("format"; manifests written before the key existed are recognised by their
# "tool" and their own sections). A directory that merely holds a file named manifest.json is not.
MANIFEST_FORMAT = "bedrock-deploy-manifest/1"
MAX_MANIFEST_BYTES = 16 << 20
EXECUTABLE_SUFFIXES = (".sh", ".sbatch", ".pbs")


@dataclass
class Inputs:
    """What a deployment was generated from (recorded in the manifest with sha256 hashes)."""

    site: LoadedSite
    service: LoadedService
    margo_info: Path | None = None
    fi_info: Path | None = None
    overrides: dict[str, int] = field(default_factory=dict)
    transport: str | None = None  # --transport: a site transport name to use
    account: str | None = None  # --account: the project the job is charged to
    queue: str | None = None  # --queue: a queue of the site's table instead of choosing one
    for_job: bool = True  # False (bedrock-deploy layout): no job is written, so no account/queue

    def files(self) -> list[tuple[str, Path]]:
        """The input files, by role (a service given as Python data has none)."""
        out = [("site", Path(f)) for f in self.site.files]
        if not self.service.in_memory:
            out.append(("service", Path(self.service.file)))
        out += [("bedrock-config", Path(f)) for f in self.service.extra_files]
        if self.margo_info is not None:
            out.append(("margo-info", self.margo_info))
        if self.fi_info is not None:
            out.append(("fi-info", self.fi_info))
        return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def select_transport_for(inputs: Inputs, nodes: int) -> tuple[TransportChoice, list[Choice]]:
    """The transport chosen by :mod:`bedrock_deploy.transports`, and what was weighed."""
    reports = HostReports.from_files(inputs.margo_info, inputs.fi_info, None)
    probe_note: list[Choice] = []
    if inputs.margo_info is None and inputs.site.profile.engine is EngineKind.embedded:
        # The embedded engine reports what it can initialise in margo-info's format, so a
        # local deployment goes through the same selection path as a cluster (issue 3).
        try:
            engine_exe = find_engine()
        except InputError as err:
            probe_note.append(Choice("transport evidence", "none from the engine",
                                     err.problems[0].message))
        else:
            probed = HostReports.from_engine(engine_exe)
            reports = replace(reports, margo_info=probed.margo_info,
                              notes=reports.notes + probed.notes)
    selection = select_transport(inputs.site.profile, nodes=nodes, reports=reports,
                                 prefer=inputs.transport, site_file=inputs.site.file,
                                 locate=inputs.site.locate)
    choices = probe_note + [Choice(f"transport candidate {v.candidate}", v.protocol, v.reason)
                            for v in selection.verdicts if not v.chosen]
    choices += [Choice("transport note", n, "transport selection") for n in selection.notes]
    return selection.choice, choices


def _locate_service_problems(err: InputError, loaded: LoadedService,
                             overrides: dict[str, int]) -> InputError:
    out: list[Problem] = []
    for p in err.problems:
        if p.location is not None:
            out.append(p)
        elif p.path == ("processes_per_node",) and "ppn" in overrides:
            out.append(replace(p, file=f"--ppn {overrides['ppn']}"))
        else:
            path = p.path if loaded.kind == "yaml" else ()
            hint = p.hint
            if loaded.kind == "bedrock-json" and p.path == ("processes_per_node",):
                hint = (f"{hint}; to set threads or placement for a Bedrock config, write a "
                        f"service YAML with 'bedrock_config: {Path(loaded.file).name}'")
            out.append(replace(p, location=loaded.locate(path), hint=hint))
    return InputError(out)


def config_origin(inputs: Inputs, path: KeyPath) -> SourceLocation:
    """Where in the inputs a part of a generated Bedrock config comes from: a provider from its
    component in the service (or the provider of the service's Bedrock JSON), anything else
    from the service's threads and placement (the margo section is planned from them)."""
    loaded = inputs.service
    if path[:1] == ("providers",) and len(path) > 1:
        rest = path[1:]
        if loaded.kind == "bedrock-json":
            return loaded.locate(("providers", *rest))
        if loaded.extra_files:  # a YAML naming bedrock_config: the providers come from there
            return loaded.locate(("bedrock_config",))
        return loaded.locate(("components", *rest))
    for key in ("threads", "placement", "margo"):
        if (key,) in loaded.locations:
            return loaded.locate((key,))
    return loaded.locate(())


def locate_in_inputs(err: InputError, inputs: Inputs) -> InputError:
    """Give every problem of a plan or a renderer a place in the inputs: a profile key path at
    its line in the profile (or the profile it extends), a generated config's at its origin."""
    out: list[Problem] = []
    for p in err.problems:
        if p.location is not None:
            out.append(p)
        elif p.file is not None and p.file.startswith(f"{CONFIG_DIR}/"):
            out.append(replace(p, location=config_origin(inputs, p.path),
                               message=f"{p.file}: {p.message}" if p.path else p.message))
        elif p.file is None or p.file in inputs.site.files:
            out.append(replace(p, location=inputs.site.locate(p.path)))
        else:
            out.append(p)
    return InputError(out)


def _chosen_by_layout(layout: NodeLayout, rank: int, issue: ConfigIssue) -> bool:
    """The validator's advice against RPC handlers in the progress pool, on a rank whose layout
    policy put them there on purpose (fewer cores than roles): its reason is the rank's
    "xstreams" decision in the manifest, so it is not repeated as a warning."""
    r = layout.ranks[rank]
    return (issue.severity == "warning" and issue.path[-1:] == ("rpc_pool",)
            and r.policy in MERGING_POLICIES and r.rpc_pool == r.progress_pool)


def _flock_bootstrap(inputs: Inputs, service: ServiceDescription
                     ) -> tuple[dict[str, Any] | None, list[Choice]]:
    """The flock defaults of a launcher without an MPI world (None: flock's own), with the
    choice that records them; refuses what would need an MPI world under such a launcher."""
    from bedrock_deploy.launch.launcher import launcher_class

    site = inputs.site.profile
    launcher = launcher_class(site.launcher.type)
    if launcher.mpi_world:
        return None, []
    defaults = copy.deepcopy(dict(launcher.flock_bootstrap))
    for i, c in enumerate(service.components):
        boot = c.config.get("bootstrap") if c.type == "flock" else None
        if boot == "mpi" or (isinstance(boot, list) and "mpi" in boot):
            path: KeyPath = ("components", i, "config", "bootstrap")
            raise fail(f"flock bootstrap {boot!r} needs an MPI world, and launcher "
                       f"{launcher.name!r} (site {site.name!r}) starts the ranks without one",
                       path=path, location=inputs.service.locate(path),
                       hint=f"remove 'bootstrap' (this launcher then uses "
                       f"{json.dumps(defaults.get('bootstrap'))}), or use a site with an MPI "
                       "launcher")
        uses_world = c.rank0_only or "MPI_COMM_WORLD" in str(c.condition or "")
        if uses_world and site.engine == EngineKind.spack:
            where: KeyPath = ("components", i)
            raise fail(f"component {c.name!r} runs where $MPI_COMM_WORLD says so, and launcher "
                       f"{launcher.name!r} gives Bedrock no MPI world (every process would "
                       "be rank 0)", path=where, location=inputs.service.locate(where),
                       hint="run it on every process, or use a site with an MPI launcher "
                       "(the embedded engine reads the launcher's rank variables instead)")
    if not any(c.type == "flock" for c in service.components):
        return defaults, []
    return defaults, [Choice("flock bootstrap", defaults, launcher.flock_bootstrap_why)]


def build_plan(inputs: Inputs) -> tuple[DeploymentPlan, list[tuple[int, ConfigIssue]]]:
    """Every decision, and the validator's warnings; raises InputError on bad input."""
    site = inputs.site.profile
    service = inputs.service.service.with_counts(inputs.overrides.get("nodes"),
                                                 inputs.overrides.get("ppn"))
    if site.nodes is not None and service.nodes > site.nodes:
        raise fail(f"the service wants {service.nodes} nodes, site {site.name!r} has "
                   f"{site.nodes}", file="--nodes" if "nodes" in inputs.overrides else None,
                   location=None if "nodes" in inputs.overrides else
                   inputs.service.locate(("nodes",)),
                   hint=f"use at most {site.nodes} nodes")
    per_rank = RankShape.of(service).xstreams  # the most a layout policy gives a process
    xstreams = service.processes_per_node * per_rank
    if xstreams > NODE_XSTREAMS.value:
        ppn_given = "ppn" in inputs.overrides
        raise fail(NODE_XSTREAMS.exceeded(
            f"{service.processes_per_node} processes per node x {per_rank} xstreams is "
            f"{xstreams:,} xstreams on a node"),
            file=f"--ppn {inputs.overrides['ppn']}" if ppn_given else None,
            location=None if ppn_given else inputs.service.locate(("processes_per_node",)),
            path=() if ppn_given else ("processes_per_node",),
            hint="use fewer processes per node or fewer rpc/io threads per process")
    flock_defaults, boot_choices = _flock_bootstrap(inputs, service)
    choices: list[Choice] = [
        Choice("nodes", service.nodes, "--nodes" if "nodes" in inputs.overrides
               else "service description"),
        Choice("processes per node", service.processes_per_node,
               "--ppn" if "ppn" in inputs.overrides else "service description"),
    ]
    if inputs.for_job:
        try:
            resolved = resolve_scheduler(site, service.nodes, account=inputs.account,
                                         queue=inputs.queue)
        except InputError as err:  # the queue table and partition are the site profile's
            raise locate_in_inputs(err, inputs) from None
        site = site.model_copy(update={"scheduler": resolved.scheduler})
        choices += [Choice(what, value, why) for what, value, why in resolved.choices]
    transport, weighed = select_transport_for(inputs, service.nodes)
    choices.append(Choice("transport", f"{transport.name} ({transport.protocol})",
                          transport.reason))
    choices += weighed
    topo = Topology.from_node(site.node)
    site_t = next((t for t in site.transports if t.name == transport.name), None)
    nic_kind = site_t.nic_kind.value if site_t and site_t.nic_kind else None
    uses_nic = site_t is None or site_t.scope is TransportScope.inter_node
    rules = site.placement
    try:
        layout = plan_layout(topo, service, nic_kind, uses_nic=uses_nic,
                             numa_confined=rules.numa_confined_ranks and not rules.spanning_env)
    except InputError as err:
        raise _locate_service_problems(err, inputs.service, inputs.overrides) from None
    if rules.numa_confined_ranks:
        spanning = [r.local_rank for r in layout.ranks if len(r.numa) > 1]
        if spanning and rules.spanning_env:
            site = site.model_copy(update={"env": {**site.env, **rules.spanning_env}})
            choices.append(Choice("environment for ranks spanning NUMA domains",
                                  rules.spanning_env,
                                  f"local ranks {spanning} span NUMA domains; "
                                  "placement.spanning_env of the site profile"))
        else:
            choices.append(Choice("ranks confined to one NUMA domain", True,
                                  "placement.numa_confined_ranks of the site profile "
                                  + (f"({rules.notes})" if rules.notes else "")))
    choices += layout.decisions  # recorded by the planner as it decided
    configs = [bedrock_config(service, r, transport, flock_defaults) for r in layout.ranks]
    ids = service.provider_ids()
    for c in service.components:
        where = "MPI rank 0 only (__if__)" if c.rank0_only else "every process"
        choices.append(Choice(f"provider {c.name}", {"type": c.type, "provider_id": ids[c.name],
                                                     "pool": c.pool_role.value, "runs on": where},
                              "component of the service; ids from 1 (0 is Bedrock's own)"))
    if any(c.type == "flock" for c in service.components):
        choices.append(Choice("flock group file", f"{RUN_DIR}/{GROUP_FILE}",
                              "bootstrap mpi: one launch for all ranks; readiness = the file "
                              "appears; bedrock-shutdown -f reads it" if flock_defaults is None
                              else "readiness = every rank is in the file; bedrock-shutdown -f "
                              "reads it"))
    choices += boot_choices
    choices.append(Choice("engine", site.engine.value, "site profile 'engine'"))
    for note in inputs.service.notes:
        choices.append(Choice("service source", note, "existing Bedrock config"))
    total = service.nodes * service.processes_per_node
    # the launch scripts give the protocol on the engine's command line (rank-exec.sh)
    issues = validate_deployment(configs, [r.cpus for r in layout.ranks], site=site,
                                 total_processes=total, cli_address=transport.protocol)
    issues = [(r, x) for r, x in issues if not _chosen_by_layout(layout, r, x)]
    errors = [(r, x) for r, x in issues if x.severity == "error"]
    if errors:
        raise InputError([replace(x.to_problem(f"{CONFIG_DIR}/{config_name(r)}"),
                                  message=f"generated config of local rank {r}: "
                                  f"{x.pointer}: {x.message} (rule {x.rule})",
                                  location=config_origin(inputs, x.path))
                          for r, x in errors])
    stale = freshness_warning(site)
    if stale:
        choices.append(Choice("site profile freshness", "stale", stale))
    warnings = [(r, x) for r, x in issues if x.severity != "error"]
    plan = DeploymentPlan(site=site, site_files=list(inputs.site.files), service=service,
                          transport=transport, layout=layout, configs=configs, choices=choices,
                          warnings=warnings, inputs=inputs)
    return plan, warnings


def _layout_dict(layout: NodeLayout) -> dict[str, Any]:
    """The layout as the manifest records it: every rank's CPUs, the policy that decided its
    xstreams, the pool of each role, and each xstream with the roles it serves."""
    return {
        "use_smt": layout.use_smt, "pins_threads": layout.pins_threads,
        "notes": list(layout.notes),
        "ranks": [{"local_rank": r.local_rank, "cpus": format_cpulist(r.cpus),
                   "numa": list(r.numa), "policy": r.policy,
                   "pools": {"progress": r.progress_pool, "rpc": r.rpc_pool, "io": r.io_pool},
                   "xstreams": [{"name": x.name, "role": x.role.value,
                                 "roles": [role.value for role in x.roles],
                                 "pools": list(x.pools), "cpus": format_cpulist(x.cpus)}
                                for x in r.xstreams]}
                  for r in layout.ranks],
    }


def render_files(plan: DeploymentPlan) -> dict[str, str]:
    """Every file of the deployment except the manifest: relative path -> text."""
    files: dict[str, str] = {}
    for rank, cfg in enumerate(plan.configs):
        files[f"{CONFIG_DIR}/{config_name(rank)}"] = json.dumps(cfg, indent=2) + "\n"
    files["spack.yaml"] = render_spack_env(plan)
    for rel, text in render_scripts(plan).items():
        files[rel] = text
    files["layout.svg"] = render_svg(plan)
    return files


def manifest(plan: DeploymentPlan, inputs: Inputs, files: dict[str, str],
             warnings: list[tuple[int, ConfigIssue]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "tool": {"name": "bedrock-deploy", "version": __version__},
        "site": plan.site.name,
        "service": plan.service.name,
        "nodes": plan.nodes,
        "processes_per_node": plan.processes_per_node,
        "total_processes": plan.total_processes,
        "inputs": [{"role": role, "file": str(p.resolve()), "sha256": sha256_file(p)}
                   for role, p in inputs.files()] + _in_memory_inputs(inputs),
        "overrides": {**inputs.overrides,
                      **({"transport": inputs.transport} if inputs.transport else {}),
                      **({"account": inputs.account} if inputs.account else {}),
                      **({"queue": inputs.queue} if inputs.queue else {})},
        "transport": asdict(plan.transport),
        "layout": _layout_dict(plan.layout),
        "choices": [{"what": c.what, "value": c.value, "why": c.why} for c in plan.choices],
        "warnings": [{"local_rank": r, **x.to_dict()} for r, x in warnings],
        "input_changes": {
            "file": inputs.service.source_config_file,
            "changes": [c.to_dict() for c in changes_to_input(plan)],
        },
        "files": {rel: hashlib.sha256(text.encode()).hexdigest()
                  for rel, text in sorted(files.items())},
    }


def _in_memory_inputs(inputs: Inputs) -> list[dict[str, Any]]:
    """A service given as Python data: recorded whole (there is no file to point at)."""
    if not inputs.service.in_memory:
        return []
    data = inputs.service.service.model_dump(mode="json", exclude_defaults=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return [{"role": "service", "file": None, "source": inputs.service.file,
             "sha256": hashlib.sha256(text.encode()).hexdigest(), "description": data}]


# ---- atomic directory write ----------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False if the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def is_deployment(directory: Path) -> bool:
    """Was ``directory`` written by bedrock-deploy (its manifest says so)?"""
    path = directory / MANIFEST
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        data = json_source.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    if data.get("format") == MANIFEST_FORMAT:
        return True
    tool = data.get("tool")
    return isinstance(tool, dict) and tool.get("name") == "bedrock-deploy" and \
        all(isinstance(data.get(k), dict | list) for k in ("inputs", "files", "layout"))


def _check_target(out: Path, force: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise fail(f"{out} exists and is not a directory", file=str(out),
                   hint="choose another -o directory")
    if out.is_dir():
        if not force:
            raise fail(f"{out} already exists", file=str(out),
                       hint="pass --force to replace it (atomically), or choose another -o")
        if any(out.iterdir()) and not is_deployment(out):
            raise fail(f"{out} is not a bedrock-deploy deployment (no {MANIFEST} written by "
                       "bedrock-deploy); --force only replaces deployments", file=str(out),
                       hint="choose an empty or new directory")


def _write_file(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (not masked by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(text.encode("utf-8", errors="surrogateescape"))
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _make_dirs(path: Path, stop: Path) -> None:
    """``mkdir -p`` below ``stop`` with mode 0755 whatever the umask."""
    missing = []
    while path != stop and not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir()
        d.chmod(DIRECTORY_MODE)


_WRITE_HINTS = {
    errno.ENOSPC: "free some space on that file system, or write elsewhere (-o)",
    errno.EDQUOT: "your disk quota is exhausted: free some space, or write elsewhere (-o)",
    errno.EACCES: "check that the directory is writable, or write elsewhere (-o)",
    errno.EROFS: "that file system is read-only: write elsewhere (-o)",
}


def write_tree(files: dict[str, str], out: Path, *, force: bool) -> None:
    """Write ``files`` as directory ``out``: all of it or nothing. Files get mode 0644 (scripts
    0755), directories 0755, whatever the umask. A failure to write (disk full, quota,
    permissions) is an :class:`~bedrock_deploy.diagnostics.OutputError` and leaves neither a
    partial directory nor the parents it created."""
    out = out.absolute()
    _check_target(out, force)
    parent = out.parent
    created: list[Path] = []  # parents this call created, outermost first
    probe = parent
    while not probe.exists() and probe != probe.parent:
        created.insert(0, probe)
        probe = probe.parent
    tmp: Path | None = None
    try:
        for d in created:
            d.mkdir()
            d.chmod(DIRECTORY_MODE)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        for rel, text in files.items():
            path = tmp / rel
            _make_dirs(path.parent, tmp)
            _write_file(path, text, EXECUTABLE_MODE if rel.endswith(EXECUTABLE_SUFFIXES)
                        else FILE_MODE)
        _make_dirs(tmp / RUN_DIR, tmp)
        tmp.chmod(DIRECTORY_MODE)
        if out.exists():
            if _exchange(tmp, out):
                shutil.rmtree(tmp)  # tmp now holds the old deployment
                return
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        if isinstance(err, OSError):
            raise OutputError(str(out), err.strerror or str(err), _WRITE_HINTS.get(
                err.errno or 0)) from None
        raise


@dataclass
class Generated:
    plan: DeploymentPlan
    out: Path
    files: list[str]
    warnings: list[tuple[int, ConfigIssue]]
    input_changes: list[InputChange] = field(default_factory=list)
    site_warnings: list[str] = field(default_factory=list)  # e.g. a stale site profile


def changes_to_input(plan: DeploymentPlan) -> list[InputChange]:
    """What the deployment changes in the user's own Bedrock JSON (none for a YAML service)."""
    source = plan.inputs.service.source_config if plan.inputs is not None else None
    return input_changes(source, plan.configs[0]) if source and plan.configs else []


def make_inputs(site: str | Path | LoadedSite, service: str | Path | LoadedService, *,
                nodes: int | None = None, ppn: int | None = None,
                margo_info: str | Path | None = None, fi_info: str | Path | None = None,
                transport: str | None = None, account: str | None = None,
                queue: str | None = None, for_job: bool = True) -> Inputs:
    """Check the overrides and report files, load what is given by name or path."""
    overrides: dict[str, int] = {}
    for key, val in (("nodes", nodes), ("ppn", ppn)):
        if val is not None:
            if isinstance(val, bool) or not isinstance(val, int):
                raise fail(f"--{key} must be a whole number (got {val!r})", file=f"--{key}")
            if val < 1:
                raise fail(f"--{key} must be at least 1 (got {val})", file=f"--{key}",
                           hint=f"give --{key} a whole number from 1")
            overrides[key] = val
    for key, path in (("--margo-info", margo_info), ("--fi-info", fi_info)):
        if path is not None and not is_file(path):
            raise fail("file not found", file=str(path), hint=f"{key} takes a saved report")
    return Inputs(site=site if isinstance(site, LoadedSite) else load_site(site),
                  service=service if isinstance(service, LoadedService) else load_service(service),
                  margo_info=Path(margo_info) if margo_info else None,
                  fi_info=Path(fi_info) if fi_info else None, overrides=overrides,
                  transport=transport, account=account, queue=queue, for_job=for_job)


def check_target(out: str | Path, force: bool) -> None:
    """Refuse, before any work, a target ``write_deployment`` would refuse (InputError)."""
    _check_target(Path(out).absolute(), force)


def write_deployment(plan: DeploymentPlan, out: str | Path, *, force: bool = False) -> list[str]:
    """Render every file of ``plan`` and write them as directory ``out`` (all or nothing);
    returns the relative paths written."""
    if plan.inputs is None:
        raise fail("this plan records no inputs (it was not made by bedrock_deploy.plan), so "
                   "no manifest can be written", hint="make the plan with bedrock_deploy.plan()")
    check_target(out, force)
    try:
        files = render_files(plan)
    except InputError as err:  # renderers know key paths, not lines: find them
        raise locate_in_inputs(err, plan.inputs) from None
    files[MANIFEST] = json.dumps(manifest(plan, plan.inputs, files, list(plan.warnings)),
                                 indent=2) + "\n"
    write_tree(files, Path(out), force=force)
    return sorted(files)


def generate(site: str | Path, service: str | Path, out: str | Path, *, force: bool = False,
             nodes: int | None = None, ppn: int | None = None,
             margo_info: str | Path | None = None,
             fi_info: str | Path | None = None, transport: str | None = None,
             account: str | None = None, queue: str | None = None) -> Generated:
    """Plan, validate, render and write one deployment directory (all or nothing)."""
    check_target(out, force)  # before any work, so a typo costs nothing
    inputs = make_inputs(site, service, nodes=nodes, ppn=ppn, margo_info=margo_info,
                         fi_info=fi_info, transport=transport, account=account, queue=queue)
    plan, warnings = build_plan(inputs)
    files = write_deployment(plan, out, force=force)
    return Generated(plan=plan, out=Path(out), files=files, warnings=warnings,
                     input_changes=changes_to_input(plan),
                     site_warnings=site_warnings(plan))


def site_warnings(plan: DeploymentPlan) -> list[str]:
    """Warnings about the site profile itself (e.g. facts older than six months)."""
    return [str(c.why) for c in plan.choices if c.what == "site profile freshness"]
