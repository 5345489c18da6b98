"""Check any Bedrock config (ours or hand-written) against what the real stack accepts.

The rules are the 15 of ``mochi-stack.md`` ("What a deployment generator must get right"),
checked as far as a config (plus, optionally, the site and the deployment) can show them;
messages quote the real Bedrock/Margo errors where there is one (``mochi-observed.md`` §4).
Each issue carries its rule number, a JSON pointer, and file:line:column when the config came
from a file (:func:`load_json_located`, which keeps positions).

Errors make ``bedrock-deploy validate`` exit 2 and ``generate`` refuse to write anything;
warnings are printed only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bedrock_deploy.diagnostics import KeyPath, Problem, SourceLocation, printable
from bedrock_deploy.files import read_input_text
from bedrock_deploy.json_source import parse_json
from bedrock_deploy.site_profile import SiteProfile
from bedrock_deploy.topology import Topology
from bedrock_deploy.yaml_source import YamlDocument

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
POOL_KINDS = ("fifo", "fifo_wait", "prio_wait", "earliest_first")
POOL_ACCESS = ("private", "spsc", "mpsc", "spmc", "mpmc")
SCHEDULER_TYPES = ("default", "basic", "prio", "randws", "basic_wait")
# margo-info's address column (mochi-stack.md §1)
KNOWN_PROTOCOLS = (
    "ofi+tcp", "ofi+verbs", "ofi+shm", "ofi+sockets", "ofi+psm2", "ofi+opx", "ofi+gni", "ofi+cxi",
    "psm+psm", "psm2+psm2", "na+sm", "bmi+tcp", "ucx+tcp", "ucx+rc", "ucx+ud", "ucx+dc",
    "ucx+all", "tcp", "verbs", "sm", "psm2", "cxi", "gni", "shm", "opx",
)
MODULE_LIBRARIES = {
    "flock": "libflock-bedrock-module.so",
    "yokan": "libyokan-bedrock-module.so",
    "abt_io": "libabt-io-bedrock-module.so",
    "warabi": "libwarabi-bedrock-module.so",
    "mofka": "libmofka-bedrock-module.so",
}
FLOCK_BOOTSTRAPS = ("self", "mpi", "join")
FLOCK_GROUPS = ("static", "centralized", "swim")
RULES = {
    1: "protocol strings",
    2: "protocol available on the site (margo-info)",
    3: "every referenced pool exists; names",
    4: "__primary__ xstream and pool",
    5: "every pool is the first pool of an xstream",
    6: "progress pool alone on its xstream",
    7: "pinning needs argobots+affinity",
    8: "CPU ids are absolute OS ids on the node",
    9: "xstreams stay inside the launcher's binding",
    10: "CXI: no mercury.auth_key",
    11: "Spack variants the config needs",
    12: "libraries",
    13: "providers",
    14: "multi-process",
    15: "readiness and shutdown",
}

# What to do about an issue of each rule when the check gives no more specific hint (every
# problem is printed with a hint).
RULE_HINTS = {
    1: 'write the address as "<class>+<protocol>://", e.g. "ofi+tcp://" (margo-info lists them)',
    2: "use a transport that margo-info reports as usable on the site",
    3: "define every pool in margo.argobots.pools, each an object with a name (letters, digits, "
       "'_'), and refer to pools by that name",
    4: 'define "__primary__" both as a pool and as an xstream whose scheduler serves it first',
    5: "make every pool the first pool of some xstream's scheduler",
    6: "give the progress pool an xstream of its own, serving no other pool",
    7: "build argobots with +affinity in the Spack environment when xstreams are pinned",
    8: "use CPU ids the node has (bedrock-deploy sites show SITE), as an array of integers",
    9: "keep each xstream's CPUs inside the CPUs the launcher gives its rank",
    10: "remove mercury.auth_key: margo takes the job's VNI itself",
    11: "add the variants the config needs to the Spack environment (spack.yaml)",
    12: 'list module libraries as an array of .so names, e.g. ["libyokan-bedrock-module.so"]',
    13: 'write each provider as an object with "name", "type" and a "provider_id" in 1..65535',
    14: "give every process the same providers, and flock a bootstrap that works for several "
        "processes (mpi)",
    15: 'give a flock provider a "file": the group file scripts wait for',
}

Severity = Literal["error", "warning"]


def json_pointer(path: KeyPath) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path) or "/"


@dataclass(frozen=True)
class ConfigIssue:
    rule: int
    path: KeyPath
    message: str
    hint: str | None = None
    severity: Severity = "error"
    location: SourceLocation | None = None

    def __post_init__(self) -> None:
        if self.hint is None:
            object.__setattr__(self, "hint", RULE_HINTS.get(self.rule))

    @property
    def pointer(self) -> str:
        return json_pointer(self.path)

    def format(self, file: str | None = None) -> str:
        where = str(self.location) if self.location else (file or "<config>")
        text = printable(f"{where}: {self.severity}: {self.pointer}: {self.message} "
                         f"(rule {self.rule})")
        if self.hint:
            text += f"\n    hint: {printable(self.hint)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity, "rule": self.rule, "rule_title": RULES[self.rule],
            "pointer": self.pointer, "message": self.message, "hint": self.hint,
            "file": self.location.file if self.location else None,
            "line": self.location.line if self.location else None,
            "column": self.location.column if self.location else None,
        }

    def to_problem(self, file: str | None = None) -> Problem:
        return Problem(f"{self.pointer}: {self.message} (rule {self.rule})", path=(),
                       location=self.location, hint=self.hint, file=file)


def load_json_located(text: str, file: str) -> YamlDocument:
    """Parse JSON strictly, with the position of every key path
    (:func:`bedrock_deploy.json_source.parse_json`: limits enforced, errors located)."""
    return parse_json(text, file)


def _protocol(address: str) -> str:
    return address.split("://", 1)[0] if "://" in address else address.split(":", 1)[0]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Checker:
    def __init__(self, config: dict[str, Any], *, topology: Topology | None,
                 site: SiteProfile | None, total_processes: int | None,
                 rank_cpus: tuple[int, ...] | None,
                 locate: Callable[[KeyPath], SourceLocation] | None, prefix: KeyPath = ()):
        self.c = config
        self.prefix = prefix
        self.topology = topology
        self.site = site
        self.total = total_processes
        self.rank_cpus = rank_cpus
        self.locate = locate
        self.issues: list[ConfigIssue] = []

    def add(self, rule: int, path: KeyPath, message: str, hint: str | None = None,
            severity: Severity = "error") -> None:
        path = (*self.prefix, *path)
        loc = self.locate(path) if self.locate else None
        self.issues.append(ConfigIssue(rule, path, message, hint, severity, loc))

    # ---- helpers -------------------------------------------------------------------------
    def engines(self) -> list[tuple[KeyPath, dict[str, Any]]]:
        m = self.c.get("margo", {})
        if isinstance(m, list):
            return [(("margo", i), e) for i, e in enumerate(m) if isinstance(e, dict)]
        return [(("margo",), m)] if isinstance(m, dict) else []

    def pools(self) -> list[dict[str, Any]]:
        engines = self.engines()
        if not engines:
            return []
        abt = engines[0][1].get("argobots", {})
        pools = abt.get("pools", []) if isinstance(abt, dict) else []
        return [p for p in pools if isinstance(p, dict)] if isinstance(pools, list) else []

    def xstreams(self) -> list[dict[str, Any]]:
        engines = self.engines()
        if not engines:
            return []
        abt = engines[0][1].get("argobots", {})
        xs = abt.get("xstreams", []) if isinstance(abt, dict) else []
        return [x for x in xs if isinstance(x, dict)] if isinstance(xs, list) else []

    def pool_names(self) -> list[str]:
        names = [p.get("name", f"__pool_{i}__") for i, p in enumerate(self.pools())]
        if not any(x.get("name") == "__primary__" for x in self.xstreams()) and \
                "__primary__" not in names:
            names.append("__primary__")  # margo adds it (mochi-stack.md §2)
        return [str(n) for n in names]

    def resolve_pool(self, ref: Any) -> str | None:
        """Pool name a reference (name or index) designates, None if it designates none."""
        names = self.pool_names()
        if _is_int(ref):
            declared = [str(p.get("name", f"__pool_{i}__")) for i, p in enumerate(self.pools())]
            return declared[ref] if 0 <= ref < len(declared) else None
        if isinstance(ref, str):
            if ref == "__primary__":
                return ref
            return ref if ref in names else None
        return None

    def sched_pools(self, x: dict[str, Any]) -> list[Any]:
        s = x.get("scheduler", {})
        p = s.get("pools", []) if isinstance(s, dict) else []
        return p if isinstance(p, list) else []

    def margo(self) -> dict[str, Any]:
        e = self.engines()
        return e[0][1] if e else {}

    def margo_path(self) -> KeyPath:
        e = self.engines()
        return e[0][0] if e else ("margo",)

    def address(self) -> str | None:
        merc = self.margo().get("mercury", {})
        if isinstance(merc, str):
            return merc
        a = merc.get("address") if isinstance(merc, dict) else None
        return a if isinstance(a, str) else None

    # ---- rules ---------------------------------------------------------------------------
    def run(self) -> list[ConfigIssue]:
        if not isinstance(self.c, dict):
            self.add(3, (), "a Bedrock config is a JSON object", "start with '{'")
            return self.issues
        m = self.c.get("margo", {})
        if not isinstance(m, dict | list):
            self.add(3, ("margo",), '"margo" must be an object (or an array of engines)')
            return self.issues
        self.rule1_2_protocol()
        self.rule3_pools()
        self.rule4_primary()
        self.rule5_pool_served()
        self.rule6_progress()
        self.rule7_8_9_cpus()
        self.rule10_cxi()
        self.rule11_spack()
        self.rule12_libraries()
        self.rule13_providers()
        self.rule14_multiprocess()
        self.rule15_readiness()
        return self.issues

    def rule1_2_protocol(self) -> None:
        mp = self.margo_path()
        addr = self.address()
        path = (*mp, "mercury", "address")
        if addr is None:
            self.add(1, (*mp, "mercury"), "no mercury.address: the protocol must then be given "
                     "on the bedrock command line", "set margo.mercury.address to the protocol, "
                     "e.g. \"ofi+tcp://\"", severity="warning")
            return
        if ":" not in addr:
            self.add(1, path, f'address {addr!r} has no ":" (Bedrock: "Could not infer protocol '
                     'for engine 0")', f'write "{addr}://"')
            return
        if "ofi_rxm" in addr:
            self.add(1, path, f"address {addr!r} hard-codes ';ofi_rxm' (Mercury adds it only for "
                     "libfabric < 1.18)", f'write "{addr.split(";")[0]}://"')
        proto = _protocol(addr).split(";")[0]
        if proto not in KNOWN_PROTOCOLS:
            self.add(1, path, f"unknown protocol {proto!r} (margo-info lists: "
                     + ", ".join(KNOWN_PROTOCOLS) + ")",
                     "use an address as margo-info lists it, e.g. \"cxi://\", \"ofi+tcp://\"")
        if self.site is not None:
            protos = [_protocol(t.protocol) for t in self.site.transports]
            if _protocol(addr) not in protos:
                self.add(2, path, f"protocol {_protocol(addr)!r} is not a transport of site "
                         f"{self.site.name!r} (it has: {', '.join(protos)})",
                         "use a protocol margo-info reports on the compute nodes; add it to "
                         "the site profile's transports if it is really there")

    def rule3_pools(self) -> None:
        mp = self.margo_path()
        abt = self.margo().get("argobots", {})
        if not isinstance(abt, dict):
            self.add(3, (*mp, "argobots"), '"argobots" must be an object')
            return
        for key in ("pools", "xstreams"):
            seq = abt.get(key, [])
            if not isinstance(seq, list):
                self.add(3, (*mp, "argobots", key), f'"{key}" must be an array')
                continue
            seen: dict[str, int] = {}
            for i, item in enumerate(seq):
                p = (*mp, "argobots", key, i)
                if not isinstance(item, dict):
                    self.add(3, p, "must be an object")
                    continue
                name = item.get("name")
                if name is not None:
                    if not isinstance(name, str) or not NAME_RE.match(name):
                        self.add(3, (*p, "name"), f"invalid name {name!r}: names match "
                                 "[A-Za-z_][A-Za-z0-9_]*", "use letters, digits and '_'")
                    elif name in seen:
                        self.add(3, (*p, "name"), f'Found two elements with the same name '
                                 f'("{name}") in "argobots.{key}" (also at index {seen[name]})',
                                 "give each one its own name")
                    else:
                        seen[name] = i
                if key == "pools":
                    kind = item.get("kind", "fifo_wait")
                    if kind not in POOL_KINDS:
                        self.add(3, (*p, "kind"), f'Invalid enum value for pool kind ("{kind}")',
                                 "use one of: " + ", ".join(POOL_KINDS))
                    acc = item.get("access", "mpmc")
                    if acc not in POOL_ACCESS:
                        self.add(3, (*p, "access"),
                                 f'Invalid enum value for pool access ("{acc}")',
                                 "use one of: " + ", ".join(POOL_ACCESS))
                else:
                    sched = item.get("scheduler", {})
                    if not isinstance(sched, dict):
                        self.add(3, (*p, "scheduler"), '"scheduler" must be an object')
                        continue
                    st = sched.get("type", "basic_wait")
                    if st not in SCHEDULER_TYPES:
                        self.add(3, (*p, "scheduler", "type"),
                                 f'Invalid enum value for scheduler.type ("{st}")',
                                 "use one of: " + ", ".join(SCHEDULER_TYPES))
                    pools = sched.get("pools", [])
                    if not isinstance(pools, list) or not pools:
                        self.add(3, (*p, "scheduler", "pools"),
                                 "the scheduler needs at least one pool",
                                 'write e.g. "pools": ["rpc_pool"]')
                        continue
                    for j, ref in enumerate(pools):
                        if self.resolve_pool(ref) is None:
                            self.add(3, (*p, "scheduler", "pools", j),
                                     f"Invalid reference to pool {ref!r} in scheduler "
                                     "configuration", "define it in argobots.pools")
        for key in ("progress_pool", "rpc_pool"):
            if key in self.margo() and self.resolve_pool(self.margo()[key]) is None:
                ref = self.margo()[key]
                self.add(3, (*mp, key), f'Could not find element named "{ref}" in '
                         '"argobots.pools" array', "define the pool or use an existing one")
        bed = self.c.get("bedrock", {})
        if isinstance(bed, dict) and "pool" in bed and self.resolve_pool(bed["pool"]) is None:
            self.add(3, ("bedrock", "pool"), f"pool {bed['pool']!r} does not exist",
                     "use a pool defined in margo.argobots.pools")
        for i, prov in enumerate(self._providers()):
            deps = prov.get("dependencies", {})
            if isinstance(deps, dict) and "pool" in deps:
                ref = deps["pool"]
                if self.resolve_pool(ref) is None:
                    how = "at index" if _is_int(ref) else "with name"
                    self.add(3, ("providers", i, "dependencies", "pool"),
                             f'While resolving dependency "pool" (type "pool"): Could not find '
                             f"pool {how} {ref!r}", "use a pool defined in margo.argobots.pools")
            if "pool" in prov and "dependencies" not in prov:
                self.add(3, ("providers", i, "pool"), 'a provider-level "pool" key is ignored '
                         "by Bedrock 0.16", 'write "dependencies": {"pool": "<name>"}',
                         severity="warning")

    def rule4_primary(self) -> None:
        mp = self.margo_path()
        for i, x in enumerate(self.xstreams()):
            if x.get("name") != "__primary__":
                continue
            p = (*mp, "argobots", "xstreams", i)
            if not any(pool.get("name") == "__primary__" for pool in self.pools()):
                self.add(4, p, "xstream __primary__ is defined but no pool is named "
                         "__primary__ (margo: \"Could not find __primary__ pool after "
                         "initialization from configuration\")",
                         "add {\"name\": \"__primary__\"} to argobots.pools, or define neither")
            pools = self.sched_pools(x)
            if pools and self.resolve_pool(pools[0]) != "__primary__":
                self.add(4, (*p, "scheduler", "pools", 0),
                         'Pool with name "__primary__" should be the first pool of the primary '
                         "xstream", 'put "__primary__" first in its scheduler pools')

    def rule5_pool_served(self) -> None:
        mp = self.margo_path()
        firsts = {self.resolve_pool(self.sched_pools(x)[0]) for x in self.xstreams()
                  if self.sched_pools(x)}
        has_primary_xs = any(x.get("name") == "__primary__" for x in self.xstreams())
        for i, pool in enumerate(self.pools()):
            name = str(pool.get("name", f"__pool_{i}__"))
            if name == "__primary__" and (not has_primary_xs or any(
                    x.get("name") == "__primary__" and "__primary__" in self.sched_pools(x)
                    for x in self.xstreams())):
                continue  # margo adds the __primary__ xstream on it; or rule 4 reports it
            if name not in firsts:
                used = any(self.resolve_pool(r) == name for x in self.xstreams()
                           for r in self.sched_pools(x))
                self.add(5, (*mp, "argobots", "pools", i),
                         f"pool {name!r} is not the first pool of any xstream: ULTs pushed into "
                         "it " + ("run only when the xstreams' first pools are empty"
                                  if used else "will never be executed"),
                         f"add an xstream whose scheduler pools start with {name!r}")
        for i, prov in enumerate(self._providers()):
            if prov.get("type") != "abt_io":
                continue
            cfg = prov.get("config", {})
            k = cfg.get("num_urings", 0) if isinstance(cfg, dict) else 0
            deps = prov.get("dependencies", {})
            pool = self.resolve_pool(deps.get("pool")) if isinstance(deps, dict) else None
            if _is_int(k) and k > 0 and pool is not None:
                n = sum(1 for x in self.xstreams()
                        if any(self.resolve_pool(r) == pool for r in self.sched_pools(x)))
                if pool == "__primary__" and not any(
                        x.get("name") == "__primary__" for x in self.xstreams()):
                    n += 1
                if n < k + 1:
                    self.add(5, ("providers", i, "config", "num_urings"),
                             f"abt_io with num_urings={k} needs at least {k + 1} xstreams on "
                             f"pool {pool!r}, it has {n} (each uring consumes one xstream)",
                             f"give pool {pool!r} {k + 1} xstreams, or lower num_urings")

    def rule6_progress(self) -> None:
        mp = self.margo_path()
        m = self.margo()
        if "progress_pool" in m and "use_progress_thread" in m:
            self.add(6, (*mp, "use_progress_thread"), "use_progress_thread is ignored when "
                     "progress_pool is set", "give either progress_pool or use_progress_thread")
        if "rpc_pool" in m and "rpc_thread_count" in m:
            self.add(6, (*mp, "rpc_thread_count"), "rpc_thread_count is ignored when rpc_pool "
                     "is set", "give either rpc_pool or rpc_thread_count")
        if "progress_pool" not in m:
            return
        prog = self.resolve_pool(m["progress_pool"])
        if prog is None:
            return
        for i, x in enumerate(self.xstreams()):
            pools = [self.resolve_pool(r) for r in self.sched_pools(x)]
            if prog in pools and len(pools) > 1:
                others = [p for p in pools if p != prog]
                self.add(6, (*mp, "argobots", "xstreams", i, "scheduler", "pools"),
                         f"progress pool {prog!r} shares xstream {x.get('name', i)!r} with "
                         f"{', '.join(map(repr, others))}: the progress loop starves them or "
                         "stalls up to 100 ms (margo PR#278)",
                         "give the progress pool an xstream of its own")
        if "rpc_pool" in m and self.resolve_pool(m["rpc_pool"]) == prog:
            self.add(6, (*mp, "rpc_pool"), f"RPC handlers run in the progress pool {prog!r}",
                     "add an rpc pool served by its own xstreams", severity="warning")

    def _cpu_items(self) -> list[tuple[KeyPath, Any]]:
        mp = self.margo_path()
        out: list[tuple[KeyPath, Any]] = []
        for i, x in enumerate(self.xstreams()):
            p = (*mp, "argobots", "xstreams", i)
            if "affinity" in x:
                aff = x["affinity"]
                if not isinstance(aff, list):
                    self.add(8, (*p, "affinity"), '"affinity" must be an array of CPU ids')
                    continue
                out += [((*p, "affinity", j), c) for j, c in enumerate(aff)]
            if "cpubind" in x:
                out.append(((*p, "cpubind"), x["cpubind"]))
        return out

    def rule7_8_9_cpus(self) -> None:
        mp = self.margo_path()
        items = self._cpu_items()
        pinned = [(p, c) for p, c in items if not (p[-1] == "cpubind" and c == -1)]
        for p, c in items:
            if not _is_int(c):
                what = "cpubind" if p[-1] == "cpubind" else "affinity entry"
                self.add(8, p, f"Invalid type for {what} (expected int, got {type(c).__name__})",
                         "write the CPU id as a number")
        for i, x in enumerate(self.xstreams()):
            cb, aff = x.get("cpubind"), x.get("affinity")
            if _is_int(cb) and cb >= 0 and isinstance(aff, list) and aff and cb not in aff:
                self.add(8, (*mp, "argobots", "xstreams", i, "cpubind"),
                         f"cpubind {cb} is not in affinity {aff}: margo applies cpubind last, "
                         "so the affinity list is silently lost",
                         "give only affinity (preferred), or only cpubind")
        if self.topology is not None:
            topo = self.topology
            reserved = {cpu for core in topo.cores if core.index in topo.reserved
                        for cpu in core.cpus}
            for p, c in pinned:
                if not _is_int(c) or c < 0:
                    continue
                if c not in topo.all_cpus:
                    self.add(8, p, f"CPU {c} does not exist on this node (CPUs 0-"
                             f"{max(topo.all_cpus)}); Argobots ignores it silently",
                             "use absolute OS CPU ids of the node")
                elif c in reserved:
                    self.add(8, p, f"CPU {c} belongs to a core reserved for the OS",
                             "use a CPU of a core not in node.reserved_cores")
                elif c not in topo.allowed_cpus:
                    self.add(8, p, f"CPU {c} is outside the allowed cpuset (EINVAL, ignored)",
                             "use a CPU in node.allowed_cpus / online_cpus")
        if self.rank_cpus is not None:
            allowed = set(self.rank_cpus)
            for p, c in pinned:
                if _is_int(c) and c >= 0 and c not in allowed:
                    self.add(9, p, f"CPU {c} is outside the cpuset the launcher binds this rank "
                             f"to ({sorted(allowed)[:8]}...)",
                             "bind the rank with --cpu-bind=none/--bind-to none or to a set "
                             "that contains every pinned CPU")
        if self.site is not None and pinned:
            req = [s.replace(" ", "") for s in self.site.spack.require.get("argobots", [])]
            if any("~affinity" in s for s in req):
                self.add(7, pinned[0][0], "xstreams are pinned but the site requires "
                         "argobots~affinity: Argobots ignores every affinity/cpubind",
                         "require argobots+affinity in the site's spack.require")

    def rule10_cxi(self) -> None:
        addr = self.address()
        merc = self.margo().get("mercury", {})
        if addr and "cxi" in _protocol(addr) and isinstance(merc, dict) and "auth_key" in merc:
            self.add(10, (*self.margo_path(), "mercury", "auth_key"),
                     f"mercury.auth_key ({merc['auth_key']!r}) on CXI disables margo's automatic "
                     "job VNI (even \"\" counts as set)",
                     "remove auth_key; launch with srun --network=job_vni,single_node_vni or "
                     "mpiexec --single-node-vni")

    def rule11_spack(self) -> None:
        m = self.margo()
        if "plumber" not in m:
            return
        p = (*self.margo_path(), "plumber")
        pl = m["plumber"]
        if isinstance(pl, dict):
            if pl.get("bucket_policy", "package") not in ("package", "numa", "all",
                                                          "passthrough"):
                self.add(11, (*p, "bucket_policy"), f"invalid bucket_policy "
                         f"{pl.get('bucket_policy')!r}", "use package, numa, all or passthrough")
            if pl.get("nic_policy", "roundrobin") not in ("roundrobin", "random", "bycore",
                                                          "byset"):
                self.add(11, (*p, "nic_policy"), f"invalid nic_policy {pl.get('nic_policy')!r}",
                         "use roundrobin, random, bycore or byset")
        req = [s.replace(" ", "") for s in self.site.spack.require.get("mochi-margo", [])] \
            if self.site else []
        if any("~hwloc" in s for s in req):
            self.add(11, p, '"plumber" field is present but mochi-plumber support is disabled '
                     "(the site requires mochi-margo~hwloc)",
                     "remove margo.plumber, or build mochi-margo+hwloc")
        elif self.site is None:
            self.add(11, p, "margo.plumber needs mochi-margo+hwloc (an error on other builds)",
                     severity="warning")

    def rule12_libraries(self) -> None:
        libs = self.c.get("libraries", [])
        if not isinstance(libs, list):
            self.add(12, ("libraries",), '"libraries" field needs to be an array',
                     'write ["libyokan-bedrock-module.so", ...] (the object form was dropped)')
            return
        for i, lib in enumerate(libs):
            if not isinstance(lib, str):
                self.add(12, ("libraries", i), "Module library should be a string")
        names = {Path(lib).name for lib in libs if isinstance(lib, str)}
        for i, prov in enumerate(self._providers()):
            t = prov.get("type")
            lib = MODULE_LIBRARIES.get(t) if isinstance(t, str) else None
            if lib and lib not in names:
                self.add(12, ("providers", i, "type"), f"provider type {t!r} needs {lib} in "
                         f'"libraries" (Bedrock: Could not find registration function for '
                         f'module "{t}")', f'add "{lib}" to libraries')

    def _providers(self) -> list[dict[str, Any]]:
        p = self.c.get("providers", [])
        return [x if isinstance(x, dict) else {} for x in p] if isinstance(p, list) else []

    def rule13_providers(self) -> None:
        provs = self.c.get("providers", [])
        if not isinstance(provs, list):
            self.add(13, ("providers",), '"providers" must be an array')
            return
        bed = self.c.get("bedrock", {})
        bid = bed.get("provider_id", 0) if isinstance(bed, dict) else 0
        names: dict[str, int] = {}
        ids: dict[tuple[int, int], int] = {}
        n_engines = len(self.engines()) or 1
        xs_names = {str(x.get("name")) for x in self.xstreams()}
        for i, prov in enumerate(provs):
            p = ("providers", i)
            if not isinstance(prov, dict):
                self.add(13, p, "a provider is an object")
                continue
            name = prov.get("name")
            if not isinstance(name, str) or not NAME_RE.match(name):
                self.add(13, (*p, "name"), f"provider name {name!r} is missing or not an "
                         "identifier ([a-zA-Z_][a-zA-Z0-9_]*)", "give the provider a name")
            elif name in names:
                self.add(13, (*p, "name"), f'Name "{name}" already used by another provider '
                         f"(providers[{names[name]}])", "give each provider its own name")
            else:
                names[name] = i
            if not isinstance(prov.get("type"), str):
                self.add(13, (*p, "type"), "provider type is missing", 'add "type": "yokan"')
            engine = prov.get("engine", 0)
            if not _is_int(engine) or not 0 <= engine < n_engines:
                self.add(13, (*p, "engine"), f"Invalid engine index {engine!r} (there are "
                         f"{n_engines} margo engines)", "use 0 or an index into margo")
                engine = 0
            pid = prov.get("provider_id")
            if pid is None:
                self.add(13, p, "no provider_id: Bedrock picks the lowest free id, so clients "
                         "cannot know it in advance", "set provider_id (1..65535)")
            elif not _is_int(pid) or not 0 <= pid <= 65535:
                self.add(13, (*p, "provider_id"), f"provider_id {pid!r} is not in 0..65535")
            elif pid == bid:
                self.add(13, (*p, "provider_id"), f"Bedrock already uses provider ID {bid}",
                         "use an id other than bedrock.provider_id")
            elif (engine, pid) in ids:
                self.add(13, (*p, "provider_id"), f"Another provider already uses provider ID "
                         f"{pid} (providers[{ids[(engine, pid)]}])", "give each its own id")
            else:
                ids[(engine, pid)] = i
            deps = prov.get("dependencies", {})
            if not isinstance(deps, dict):
                self.add(13, (*p, "dependencies"), '"dependencies" must be an object')
                deps = {}
            if prov.get("type") == "abt_io" and "pool" not in deps:
                self.add(13, (*p, "dependencies"), 'Missing dependency "pool" of type "pool" '
                         "in provider configuration", 'add "dependencies": {"pool": "io_pool"}')
            earlier = {str(q.get("name")): q for q in provs[:i] if isinstance(q, dict)}
            earlier_ids = {f"{q.get('type')}:{q.get('provider_id')}": q
                           for q in provs[:i] if isinstance(q, dict)}
            for key, val in deps.items():
                if key == "pool":
                    continue
                refs = val if isinstance(val, list) else [val]
                for j, ref in enumerate(refs):
                    dp = (*p, "dependencies", key) + ((j,) if isinstance(val, list) else ())
                    if not isinstance(ref, str | int) or isinstance(ref, bool):
                        self.add(13, dp, f"dependency {ref!r} must be a string or an integer")
                        continue
                    if _is_int(ref) or "@" in str(ref):
                        continue  # index or remote provider
                    if ref in earlier or ref in earlier_ids or ref in xs_names or \
                            self.resolve_pool(ref) is not None:
                        continue
                    later = [q.get("name") for q in provs[i + 1:] if isinstance(q, dict)]
                    where = "is created later: Bedrock creates providers in array order" \
                        if ref in later else "does not exist"
                    self.add(13, dp, f"dependency {key!r} refers to {ref!r}, which {where}",
                             "depend on an earlier provider (name or type:id), a pool, or a "
                             "remote provider (name@rank)")

    def rule14_multiprocess(self) -> None:
        provs = self._providers()
        for i, prov in enumerate(provs):
            if "__if__" in prov and not isinstance(prov["__if__"], bool | str):
                self.add(14, ("providers", i, "__if__"), '"__if__" must be a boolean or a Jx9 '
                         'condition string', 'write "$MPI_COMM_WORLD.rank == 0"')
        guarded = {str(q.get("name")) for q in provs if "__if__" in q}
        for i, prov in enumerate(provs):
            if "__if__" in prov:
                continue
            deps = prov.get("dependencies", {})
            for key, val in (deps.items() if isinstance(deps, dict) else []):
                for ref in val if isinstance(val, list) else [val]:
                    if isinstance(ref, str) and ref in guarded:
                        self.add(14, ("providers", i, "dependencies", key),
                                 f"depends on {ref!r}, which exists only where its __if__ holds "
                                 f"(e.g. rank 0), but {prov.get('name')!r} runs everywhere",
                                 f"give it the same __if__, or depend on '{ref}@0'")
            if prov.get("type") != "flock":
                continue
            cfg = prov.get("config", {})
            if not isinstance(cfg, dict):
                continue
            p = ("providers", i, "config")
            boot = cfg.get("bootstrap")
            if boot is None:
                self.add(14, p, '"bootstrap" field not found', 'add "bootstrap": "mpi"')
                continue
            boots = boot if isinstance(boot, list) else [boot]
            for b in boots:
                if b not in FLOCK_BOOTSTRAPS:
                    self.add(14, (*p, "bootstrap"), f'Invalid value "{b}" for flock bootstrap',
                             "use self, mpi or join (or a list tried in order)")
            group = cfg.get("group", {})
            gtype = group.get("type") if isinstance(group, dict) else None
            if gtype is None:
                self.add(14, (*p, "group"), "flock group type missing (\"No backend type "
                         "provided\")", 'add "group": {"type": "static"}')
            elif gtype not in FLOCK_GROUPS:
                self.add(14, (*p, "group", "type"), f"unknown flock group type {gtype!r}",
                         "use static, centralized or swim")
            if "join" in boots:
                if "file" not in cfg:
                    self.add(14, (*p, "bootstrap"), 'bootstrap "join" needs "file"',
                             "add the group file path")
                if gtype == "static":
                    self.add(14, (*p, "group", "type"), 'bootstrap "join" never works with a '
                             "static group", 'use "centralized" for staggered starts')
            if self.total is not None and self.total > 1 and boots == ["self"]:
                self.add(14, (*p, "bootstrap"), f'bootstrap "self" with {self.total} processes '
                         "makes each process its own one-member group",
                         'use "mpi" (one launch for all ranks) or ["join", "mpi"]')
        for k, (ep, eng) in enumerate(self.engines()):
            if k == 0:
                continue
            for key in ("argobots", "use_progress_thread", "rpc_thread_count"):
                if key in eng:
                    self.add(14, (*ep, key), f"child margo engine {k} must not contain {key!r}",
                             "remove it: children share the parent's Argobots setup")

    def rule15_readiness(self) -> None:
        flocks = [(i, p) for i, p in enumerate(self._providers()) if p.get("type") == "flock"]
        if not flocks:
            self.add(15, ("providers",), "no flock provider: no group file tells scripts when "
                     "the service is up or where to send bedrock-shutdown -f",
                     "add a flock provider with \"file\"", severity="warning")
        for i, p in flocks:
            cfg = p.get("config", {})
            if isinstance(cfg, dict) and "file" not in cfg:
                self.add(15, ("providers", i, "config"), "flock provider writes no group file: "
                         "readiness (the file appearing) and bedrock-shutdown -f need it",
                         '"file": "group.json" (relative to the working directory)')
        addr = self.address()
        if self.site is not None and addr and "tcp" in _protocol(addr):
            merc = self.margo().get("mercury", {})
            t = next((t for t in self.site.transports
                      if _protocol(t.protocol) == _protocol(addr)), None)
            env = {**self.site.env, **(t.env if t else {})}
            nics = [n for n in self.site.node.nics if n.kind.value == "tcp"]
            if len(nics) > 1 and "FI_TCP_IFACE" not in env and not (
                    isinstance(merc, dict) and merc.get("ip_subnet")):
                self.add(15, (*self.margo_path(), "mercury"), f"ofi+tcp on a node with "
                         f"{len(nics)} interfaces and no FI_TCP_IFACE or mercury.ip_subnet: "
                         "libfabric tcp may hang (ofiwg/libfabric#12480)",
                         "set FI_TCP_IFACE in the site transport's env, or mercury.ip_subnet",
                         severity="warning")


def validate_config(config: Any, *, topology: Topology | None = None,
                    site: SiteProfile | None = None, total_processes: int | None = None,
                    rank_cpus: tuple[int, ...] | None = None,
                    locate: Callable[[KeyPath], SourceLocation] | None = None,
                    ) -> list[ConfigIssue]:
    """Every issue of one Bedrock config (errors first)."""
    if topology is None and site is not None:
        topology = Topology.from_node(site.node)
    if isinstance(config, list) and config:
        # one config per process (Bedrock takes element [rank]; mochi.bedrock.spec's
        # ServiceSpec.to_json writes this form)
        issues = [i for n, element in enumerate(config) for i in _Checker(
            element, topology=topology, site=site, total_processes=total_processes,
            rank_cpus=rank_cpus, locate=locate, prefix=(n,)).run()]
        if total_processes is not None and len(config) not in (1, total_processes):
            loc = locate(()) if locate else None
            issues.append(ConfigIssue(14, (), f"an array of {len(config)} configs runs on "
                                      f"{total_processes} processes: Bedrock needs 1 or one "
                                      "per MPI rank", "use one config object with __if__ "
                                      "conditions", "error", loc))
        return sorted(issues, key=lambda x: (x.severity != "error",))
    issues = _Checker(config, topology=topology, site=site, total_processes=total_processes,
                      rank_cpus=rank_cpus, locate=locate).run()
    return sorted(issues, key=lambda x: (x.severity != "error",))


def validate_deployment(configs: list[dict[str, Any]], rank_cpus: list[tuple[int, ...]], *,
                        site: SiteProfile | None = None, total_processes: int | None = None,
                        ) -> list[tuple[int, ConfigIssue]]:
    """Check each rank's config, and that no CPU is pinned by two local ranks."""
    out: list[tuple[int, ConfigIssue]] = []
    owner: dict[int, int] = {}
    for rank, (cfg, cpus) in enumerate(zip(configs, rank_cpus, strict=True)):
        out += [(rank, x) for x in validate_config(cfg, site=site, rank_cpus=cpus,
                                                   total_processes=total_processes)]
        for c in cpus:
            if c in owner:
                out.append((rank, ConfigIssue(9, (), f"CPU {c} is bound to local ranks "
                                              f"{owner[c]} and {rank}")))
            owner.setdefault(c, rank)
    return out


def load_config_file(path: str | Path) -> YamlDocument:
    return load_json_located(read_input_text(path), str(path))


def validate_file(path: str | Path, *, site: SiteProfile | None = None,
                  total_processes: int | None = None) -> list[ConfigIssue]:
    doc = load_config_file(path)
    return validate_config(doc.data, site=site, total_processes=total_processes,
                           locate=doc.locate)
