"""``bedrock-deploy probe --site NAME``: collect, on a login or compute node of the machine, the
facts of a site profile that decay, as a profile fragment or a reviewed diff.

What is collected (each command's output can also be read from a directory of recorded
outputs, ``--from DIR``, which is how the tests run it):

============================  ==========================  =====================================
fact                          command                     file in ``--from DIR``
============================  ==========================  =====================================
queues and limits (PBS Pro)   ``qstat -Qf``               ``qstat-Qf.txt``
partitions and limits (Slurm) ``scontrol show partition   ``scontrol-show-partition.txt``
                              -o``
QOS limits (Slurm)            ``sacctmgr -nP show qos     ``sacctmgr-qos.txt``
                              format=Name,MaxWall,
                              MaxTRESPerJob``
available modules             ``module -t avail``         ``module-avail.txt``
libfabric version             ``fi_info --version``       ``fi_info-version.txt``
what Margo can initialise     ``margo-info``, through     ``margo-info.txt``
                              the site's launcher with
                              the transport's flags
============================  ==========================  =====================================

``margo-info`` opens network endpoints: on a Slingshot (CXI) site it only gets a VNI when the
launcher starts it with the VNI flags, so it is run as ``<launcher one-process prefix>
<transport launcher_flags> margo-info`` (see :func:`launcher_prefix`), like every other
process that talks on such a transport.

The programming-environment version is read from the module listing: ``cpe/<version>``
modules (HPE Cray PE) and ``/opt/aurora/<version>/`` module directories (ALCF's Aurora PE).
"""

from __future__ import annotations

import datetime
import difflib
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_deploy.diagnostics import fail
from bedrock_deploy.files import is_dir
from bedrock_deploy.site_profile import SiteProfile

# What a command is called, and the file it is read from with --from DIR.
COMMANDS: dict[str, tuple[list[str], str]] = {
    "qstat": (["qstat", "-Qf"], "qstat-Qf.txt"),
    "partitions": (["scontrol", "show", "partition", "-o"], "scontrol-show-partition.txt"),
    "qos": (["sacctmgr", "-nP", "show", "qos", "format=Name,MaxWall,MaxTRESPerJob"],
            "sacctmgr-qos.txt"),
    "modules": (["bash", "-lc", "module -t avail 2>&1"], "module-avail.txt"),
    "fi_info": (["fi_info", "--version"], "fi_info-version.txt"),
    "margo_info": (["margo-info"], "margo-info.txt"),
}

# Module families whose versions decay; matched on the module name before the '/'.
MODULE_FAMILIES: dict[str, tuple[str, ...]] = {
    "compilers": ("gcc", "gcc-native", "oneapi", "intel-oneapi-compilers", "cce", "llvm",
                  "PrgEnv-gnu", "PrgEnv-cray", "PrgEnv-nvidia", "nvhpc", "aocc"),
    "mpi": ("mpich", "cray-mpich", "openmpi", "intel-oneapi-mpi", "intel-mpi", "mvapich2"),
    "libfabric": ("libfabric",),
    "pe": ("cpe",),
}


def launcher_prefix(site: SiteProfile) -> list[str]:
    """The command that starts one process on a compute node through the site's launcher
    (``Launcher.single_process_argv``), with the flags its first inter-node transport needs
    (Slingshot VNI), or [] when that transport needs none (the process then runs directly)."""
    from bedrock_deploy.launch.launcher import launcher_class  # local: launch imports profiles

    t = next((t for t in site.transports if t.scope.value == "inter-node"), None)
    if t is None or not t.launcher_flags:
        return []
    return [*launcher_class(site.launcher.type).single_process_argv(site), *t.launcher_flags]


Runner = Callable[[str, list[str]], str | None]


def live_runner(name: str, argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout + (proc.stderr if name == "modules" else "")


def recorded_runner(directory: Path) -> Runner:
    def run(name: str, argv: list[str]) -> str | None:
        path = directory / COMMANDS[name][1]
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    return run


# ---- parsers -------------------------------------------------------------------------------

def _walltime(text: str | None) -> str | None:
    """PBS 'HH:MM:SS' / Slurm '[D-]HH:MM:SS', 'UNLIMITED', minutes -> profile wall time."""
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    if re.fullmatch(r"\d+", text):  # Slurm minutes
        minutes = int(text)
        days, rest = divmod(minutes, 1440)
        hhmm = f"{rest // 60:02d}:{rest % 60:02d}:00"
        return f"{days}-{hhmm}" if days else hhmm
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})", text)
    if not m:
        return None
    days, hours = int(m.group(1) or 0), int(m.group(2))
    days, hours = days + hours // 24, hours % 24
    hhmmss = f"{hours:02d}:{m.group(3)}:{m.group(4)}"
    return f"{days}-{hhmmss}" if days else hhmmss


def parse_qstat_qf(text: str) -> list[dict[str, Any]]:
    """PBS Pro ``qstat -Qf``: one mapping per queue (name, type, node range, wall time,
    enabled/started, routing destinations)."""
    queues: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        m = re.match(r"^Queue:\s*(\S+)", line)
        if m:
            current = {"__name__": m.group(1)}
            queues.append(current)  # type: ignore[arg-type]
            key = None
            continue
        m = re.match(r"^\s+([\w.]+)\s*=\s*(.*)$", line)
        if m and current:
            key = m.group(1)
            current[key] = m.group(2).strip()
        elif key and current and line.startswith("\t"):  # continuation line
            current[key] += line.strip()
    out = []
    for q in queues:
        def num(k: str, q: dict[str, str] = q) -> int | None:
            v = q.get(k)
            return int(v) if v and v.isdigit() else None
        out.append({
            "name": q["__name__"],
            "type": q.get("queue_type", "").lower(),
            "min_nodes": num("resources_min.nodect") or 1,
            "max_nodes": num("resources_max.nodect"),
            "max_walltime": _walltime(q.get("resources_max.walltime")),
            "enabled": q.get("enabled", "True") == "True" and q.get("started", "True") == "True",
            "routes_to": [d.strip() for d in q.get("route_destinations", "").split(",")
                          if d.strip()],
            "acl": q.get("acl_user_enable") == "True" or q.get("acl_group_enable") == "True",
            "from_route_only": q.get("from_route_only") == "True",
        })
    return out


def parse_scontrol_partitions(text: str) -> list[dict[str, Any]]:
    """``scontrol show partition -o``: one line of Key=Value per partition."""
    out = []
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "PartitionName" not in fields:
            continue
        max_nodes = fields.get("MaxNodes", "UNLIMITED")
        total = fields.get("TotalNodes", "")
        out.append({
            "name": fields["PartitionName"],
            "min_nodes": int(fields.get("MinNodes", "1") or 1),
            "max_nodes": int(max_nodes) if max_nodes.isdigit() else
            (int(total) if total.isdigit() else None),
            "max_walltime": _walltime(fields.get("MaxTime")),
            "default": fields.get("Default") == "YES",
            "enabled": fields.get("State", "UP") == "UP",
        })
    return out


def parse_sacctmgr_qos(text: str) -> list[dict[str, Any]]:
    """``sacctmgr -nP show qos format=Name,MaxWall,MaxTRESPerJob``."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        m = re.search(r"node=(\d+)", parts[2])
        out.append({"name": parts[0], "max_walltime": _walltime(parts[1]) if parts[1] else None,
                    "max_nodes": int(m.group(1)) if m else None})
    return out


def parse_module_avail(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """``module -t avail``: modules of each family in :data:`MODULE_FAMILIES`, and the
    programming-environment versions seen (cpe/<v>, /opt/aurora/<v>/ directories)."""
    families: dict[str, list[str]] = {k: [] for k in MODULE_FAMILIES}
    pe: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        m = re.search(r"/opt/aurora/([\d.]+)/", line)
        if m and m.group(1) not in pe:
            pe.append(f"aurora-pe/{m.group(1)}")
        if not line or line.endswith(":") or line.startswith("/"):
            continue
        name = re.sub(r"\s*\((?:D|L|default)[^)]*\)$", "", line).rstrip("/")
        family = name.split("/")[0]
        for key, members in MODULE_FAMILIES.items():
            if family in members and name not in families[key]:
                families[key].append(name)
        if family == "cpe" and "/" in name and name not in pe:
            pe.append(name)
    return families, list(dict.fromkeys(pe))


def parse_fi_info_version(text: str) -> str | None:
    m = re.search(r"libfabric:\s*([\w.]+)", text)
    return m.group(1) if m else None


# ---- the fragment --------------------------------------------------------------------------

@dataclass
class SiteProbe:
    site: str
    host: str
    when: str
    queues: list[dict[str, Any]] = field(default_factory=list)
    modules: dict[str, list[str]] = field(default_factory=dict)
    pe_versions: list[str] = field(default_factory=list)
    libfabric: str | None = None
    margo_info: str | None = None
    margo_command: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # commands that gave nothing
    notes: list[str] = field(default_factory=list)


def collect(site: SiteProfile, run: Runner, host: str | None = None,
            today: datetime.date | None = None) -> SiteProbe:
    """Run (or read) every command and parse what it says."""
    probe = SiteProbe(site=site.name, host=host or socket.gethostname(),
                      when=(today or datetime.date.today()).isoformat())

    def get(name: str, argv: list[str] | None = None) -> str | None:
        text = run(name, argv or COMMANDS[name][0])
        if text is None or not text.strip():
            probe.missing.append(" ".join(argv or COMMANDS[name][0]))
            return None
        return text

    if site.scheduler.type == "pbs":
        text = get("qstat")
        if text:
            probe.queues = parse_qstat_qf(text)
    elif site.scheduler.type == "slurm":
        text = get("partitions")
        if text:
            probe.queues = parse_scontrol_partitions(text)
        if any(q.option.value == "qos" for q in site.scheduler.queues):
            qos = get("qos")
            if qos:
                probe.queues += [{**q, "option": "qos"} for q in parse_sacctmgr_qos(qos)]
    modules = get("modules")
    if modules:
        probe.modules, probe.pe_versions = parse_module_avail(modules)
    fi = get("fi_info")
    probe.libfabric = parse_fi_info_version(fi) if fi else None
    probe.margo_command = [*launcher_prefix(site), "margo-info"]
    probe.margo_info = get("margo_info", probe.margo_command)
    if probe.margo_info is None and site.transports and site.transports[0].launcher_flags:
        probe.notes.append("margo-info must run through the launcher with "
                           + " ".join(site.transports[0].launcher_flags)
                           + " on this site (no VNI otherwise): run it inside a job")
    return probe


def _queue_rows(probe: SiteProbe) -> list[dict[str, Any]]:
    rows = []
    for q in probe.queues:
        if not q.get("enabled", True) or q.get("from_route_only"):
            continue  # closed, or reachable only through a routing queue
        row: dict[str, Any] = {"name": q["name"]}
        if q.get("option") == "qos":
            row["option"] = "qos"
        row["min_nodes"] = q.get("min_nodes", 1)
        for key in ("max_nodes", "max_walltime"):
            if q.get(key) is not None:
                row[key] = q[key]
        if q.get("acl"):
            row["auto"] = False
            row["notes"] = "access list: by request"
        rows.append(row)
    return rows


def fragment(probe: SiteProbe, site: SiteProfile) -> dict[str, Any]:
    """A site-profile fragment (``extends: <site>``) with what was observed."""
    data: dict[str, Any] = {"name": f"{site.name}-probed", "extends": site.name}
    rows = _queue_rows(probe)
    if rows:
        data["scheduler"] = {"queues": rows}
    against = [f"bedrock-deploy probe --site {site.name} on {probe.host}"]
    not_verified = []
    if probe.libfabric:
        against.append(f"fi_info --version: libfabric {probe.libfabric}")
    for key, mods in probe.modules.items():
        if mods:
            against.append(f"module avail ({key}): " + ", ".join(mods[:12])
                           + (", ..." if len(mods) > 12 else ""))
    if probe.pe_versions:
        against.append("programming environment: " + ", ".join(probe.pe_versions))
    avail = {m for mods in probe.modules.values() for m in mods}
    families = {m.split("/")[0] for m in avail}
    for ext in [*site.spack.externals, *site.spack.compilers]:
        for mod in ext.modules:
            if probe.modules and mod not in avail and mod not in families:
                not_verified.append(f"module {mod} of {ext.spec} is not in module avail")
    if probe.missing:
        not_verified += [f"no output from: {c}" for c in probe.missing]
    data["verified"] = {"date": probe.when, "against": against}
    if not_verified:
        data["verified"]["not_verified"] = not_verified
    return data


_ROW_KEYS = ("name", "option", "min_nodes", "max_nodes", "max_walltime", "auto")


def _canon(row: dict[str, Any]) -> dict[str, Any]:
    """A queue row in one key order and wall-time spelling, so a diff shows only changes."""
    out = {k: row[k] for k in _ROW_KEYS if row.get(k) is not None}
    if out.get("max_walltime"):
        out["max_walltime"] = _walltime(str(out["max_walltime"]))
    if out.get("option") == "queue":
        del out["option"]
    if out.get("auto") is True:
        del out["auto"]
    return out


def _current(site: SiteProfile) -> dict[str, Any]:
    """The shipped profile's values of the fields a fragment carries, in the same shape."""
    rows = [_canon(q.model_dump(mode="json")) for q in site.scheduler.queues]
    return {"scheduler": {"queues": rows}}


def diff(probe: SiteProbe, site: SiteProfile, render: Callable[[dict[str, Any]], str]) -> str:
    """A unified diff: the shipped profile's queue table and module facts -> what was seen."""
    frag = fragment(probe, site)
    seen = {"scheduler": {"queues": [_canon(r)
                                     for r in frag.get("scheduler", {}).get("queues", [])]}}
    before = render(_current(site)).splitlines(keepends=True)
    after = render(seen).splitlines(keepends=True)
    text = "".join(difflib.unified_diff(before, after, f"{site.name} (shipped)",
                                        f"{site.name} (probed on {probe.host})"))
    extra = [f"# {line}" for line in frag["verified"].get("not_verified", [])]
    extra += [f"# seen: {line}" for line in frag["verified"]["against"][1:]]
    extra += [f"# note: {n}" for n in probe.notes]
    return text + ("\n".join(extra) + "\n" if extra else "")


def from_directory(directory: str | Path) -> Runner:
    path = Path(directory)
    if not is_dir(path):
        raise fail("not a directory of recorded outputs", file=str(path),
                   hint="give a directory holding " + ", ".join(f for _, f in COMMANDS.values()))
    return recorded_runner(path)
