"""Check any Bedrock config (ours or hand-written) against what the real Bedrock 0.16.1 does.

The verdict follows the real stack (Bedrock 0.16.1, Margo 0.24.0, Argobots 1.2, Flock 0.7.0,
Yokan 0.10.0, ABT-IO 0.9.0), whose behaviour was recorded case by case
(``tests/data/bedrock-corpus``, checked by ``tests/test_corpus_validator.py``):

* an **error** is a config the real daemon refuses; its message quotes the real daemon's own
  message (``Invalid type in Bedrock's "pool" entry``, ``[flock] Cannot join a static group``,
  ...);
* the validator is stricter than the real daemon only where the real daemon itself logs that
  the config misbehaves (a pool no xstream serves, a pool that can starve, a setting it ignores);
  those errors quote the real warning;
* a **warning** is something the real daemon accepts silently but that does not do what it
  says (sections and dependency keys Bedrock 0.16 drops, CPUs Argobots cannot pin, several ranks
  of a node left to Argobots' default pinning, an address only the command line makes valid),
  or a deployment risk (no group file, ofi+tcp on several interfaces).

Each issue carries a rule number (:data:`RULES`, the validator's own taxonomy), a JSON pointer,
and file:line:column when the config came from a file (:func:`load_json_located`).
Errors make ``bedrock-deploy validate`` exit 2 and ``generate`` refuse to write anything;
warnings are printed only. What each provider type declares comes from the component
catalogue (:mod:`bedrock_deploy.components`).

Sources (read at the commits the recordings were made with, 2026-11-29):
https://github.com/mochi-hpc/mochi-bedrock/blob/b0cb3c772e4e78b3eba58a7aa211bf781b42db4f/src/
(``Server.cpp``, ``ProviderManager.cpp``, ``DependencyFinder.cpp``, ``MargoManager.cpp``,
``JsonUtil.hpp``), https://github.com/mochi-hpc/mochi-margo/blob/
3dfd93d194866030f8502dbcf44283eff8194441/src/margo-init.c (``__margo_validate_json``,
``sanity_check_abt_configuration``), https://github.com/mochi-hpc/mochi-flock/blob/
9520fca7ba24977795735e28da364bc4863cb3fd/src/bedrock-module.cpp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bedrock_deploy.components import Catalogue, ComponentType, catalogue, config_uses_mpi
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
# margo-info's address column
KNOWN_PROTOCOLS = (
    "ofi+tcp", "ofi+verbs", "ofi+shm", "ofi+sockets", "ofi+psm2", "ofi+opx", "ofi+gni", "ofi+cxi",
    "psm+psm", "psm2+psm2", "na+sm", "bmi+tcp", "ucx+tcp", "ucx+rc", "ucx+ud", "ucx+dc",
    "ucx+all", "tcp", "verbs", "sm", "psm2", "cxi", "gni", "shm", "opx",
)
# Bedrock 0.16 reads only these top-level keys (Server.cpp); our embedded engine also reads
# "bedrock_engine", which the real daemon ignores like any other unknown key.
TOP_LEVEL_KEYS = ("margo", "bedrock", "libraries", "providers")
ENGINE_SECTION = "bedrock_engine"
SEED_SECTIONS = ("abt_io", "ssg", "mona", "clients")
FLOCK_BOOTSTRAPS = ("self", "mpi", "join")
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
# Margo's sanity-check warnings (margo-init.c, sanity_check_abt_configuration)
WARN_UNUSED = ("Pool \"{name}\" at index {index} is not currently associated with any ES. ULT "
               "pushed into that pool will not get executed.")
WARN_NOT_FIRST = ("Pool \"{name}\" at index {index} is not the first pool of any ES. This could "
                  "cause starvation for ULTs pushed in that pool.")
WARN_NOT_BEFORE = ("Pool \"{name}\" at index {index} does not appear before the progress pool in "
                   "any ES. Depending on the type of scheduler used, this may cause ULTs pushed "
                   "in that pool to never execute because the progress pool will keep the ES "
                   "busy.")
WARN_AFTER = ("Pool \"{name}\" at index {index} appears after the progress pool in at least one "
              "ES. Depending on the type of scheduler used, this ES may never pull ULTs from that "
              "pool because the progress pool will keep the ES busy.")
WARN_WITH = ("Pool \"{name}\" at index {index} is used by an ES that is also associated with the "
             "progress pool. This may cause ULTs pushed into that pool to get unnecessarily "
             "delayed.")
# The address given on the command line is not known (None), absent (NO_CLI_ADDRESS) or given.
NO_CLI_ADDRESS = ""

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


def _json_type(v: Any) -> str:
    """json-c's type names, as Margo prints them."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _dump(v: Any) -> str:
    """``nlohmann::json::dump()`` of a value (compact, keys sorted)."""
    return json.dumps(v, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# ---- what Bedrock does to the text before anything else (JsonUtil.hpp) -----------------------
def expand_dotted(obj: dict[str, Any], origin: KeyPath = ()) -> tuple[dict[str, Any],
                                                                      dict[KeyPath, KeyPath]]:
    """``"a.b": v`` -> ``{"a": {"b": v}}`` (objects only, like expandSimplifiedJSON), with a map
    from each new key path to the original one (for locations)."""
    out: dict[str, Any] = {}
    where: dict[KeyPath, KeyPath] = {}

    def put(target: dict[str, Any], parts: list[str], value: Any, new: KeyPath,
            orig: KeyPath) -> None:
        node = target
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
            where.setdefault((*new, *parts[:i + 1]), orig)
        last = parts[-1]
        if isinstance(value, dict):
            sub, sub_where = expand_dotted(value, orig)
            if not isinstance(node.get(last), dict):
                node[last] = {}
            node[last].update(sub)
            for k, v in sub_where.items():
                where[(*new, *parts, *k)] = v
        else:
            node[last] = value
        where[(*new, *parts)] = orig

    for key, value in obj.items():
        put(out, str(key).split("."), value, (), (*origin, key))
    return out, where


def filter_false_conditions(obj: Any) -> Any:
    """Drop objects whose ``__if__`` is ``false`` (a condition string depends on the rank and
    is kept: the validator checks both outcomes)."""
    if isinstance(obj, dict):
        return {k: filter_false_conditions(v) for k, v in obj.items()
                if not (isinstance(v, dict) and v.get("__if__") is False)}
    if isinstance(obj, list):
        return [filter_false_conditions(v) for v in obj
                if not (isinstance(v, dict) and v.get("__if__") is False)]
    return obj


# ---- Margo's view of the Argobots section (margo-abt-config.c) -------------------------------
@dataclass
class MargoModel:
    """Pools and xstreams as Margo creates them, when the section is valid."""

    pools: list[str]
    xstreams: list[tuple[str, list[str]]]  # name, scheduler pools (names)
    progress: str
    rpc: str

    def warnings(self) -> list[tuple[int, str]]:
        """(pool index, Margo's warning text) of ``sanity_check_abt_configuration``."""
        first, with_p, after, before = set(), set(), set(), set()
        for _name, pools in self.xstreams:
            has_progress = False
            for j, p in enumerate(pools):
                if p == self.progress:
                    has_progress = True
                if j == 0:
                    first.add(p)
                if p != self.progress:
                    (after if has_progress else before).add(p)
            if has_progress:
                with_p.update(pools)
        out: list[tuple[int, str]] = []
        for i, name in enumerate(self.pools):
            used = name in first | with_p | after | before
            if not used:
                out.append((i, WARN_UNUSED.format(name=name, index=i)))
                continue
            if name not in first:
                out.append((i, WARN_NOT_FIRST.format(name=name, index=i)))
            if name == self.progress:
                continue
            if name not in before:
                out.append((i, WARN_NOT_BEFORE.format(name=name, index=i)))
            if name in after:
                out.append((i, WARN_AFTER.format(name=name, index=i)))
            if name in with_p:
                out.append((i, WARN_WITH.format(name=name, index=i)))
        return out


def margo_model(margo: Any) -> MargoModel | None:
    """What Margo would build from a margo section (None if it would refuse it)."""
    if not isinstance(margo, dict):
        margo = {}
    abt = margo.get("argobots", {})
    abt = abt if isinstance(abt, dict) else {}
    raw_pools = abt.get("pools", [])
    raw_xs = abt.get("xstreams", [])
    if not isinstance(raw_pools, list) or not isinstance(raw_xs, list):
        return None
    pools = [str(p.get("name", f"__pool_{i}__")) if isinstance(p, dict) else f"__pool_{i}__"
             for i, p in enumerate(raw_pools)]
    declared = list(pools)
    xstreams: list[tuple[str, list[str]]] = []
    for i, x in enumerate(raw_xs):
        if not isinstance(x, dict):
            return None
        sched = x.get("scheduler", {})
        refs = sched.get("pools", []) if isinstance(sched, dict) else []
        names = []
        for r in refs if isinstance(refs, list) else []:
            if _is_int(r) and 0 <= r < len(declared):
                names.append(declared[r])
            elif isinstance(r, str):
                names.append(r)
            else:
                return None
        xstreams.append((str(x.get("name", f"__xstream_{i}__")), names))
    if not any(n == "__primary__" for n, _ in xstreams):
        if "__primary__" not in pools:
            pools.append("__primary__")
        xstreams.append(("__primary__", ["__primary__"]))

    def ref(key: str) -> str | None:
        r = margo.get(key)
        if _is_int(r):
            return declared[r] if 0 <= r < len(declared) else None
        return r if isinstance(r, str) and r in pools else None

    def add_pool(count: int) -> str:
        name = f"__pool_{len(pools)}__"
        pools.append(name)
        for _ in range(count):
            xstreams.append((f"__xstream_{len(xstreams)}__", [name]))
        return name

    if "progress_pool" in margo:
        progress = ref("progress_pool")
    elif margo.get("use_progress_thread") is True:
        progress = add_pool(1)
    else:
        progress = "__primary__"
    count = margo.get("rpc_thread_count", 0)
    count = count if _is_int(count) else 0
    if "rpc_pool" in margo:
        rpc = ref("rpc_pool")
    elif count > 0:
        rpc = add_pool(count)
    elif count < 0:
        rpc = progress
    else:
        rpc = "__primary__"
    if progress is None or rpc is None:
        return None
    return MargoModel(pools=pools, xstreams=xstreams, progress=progress, rpc=rpc)


class _Checker:
    def __init__(self, config: dict[str, Any], *, topology: Topology | None,
                 site: SiteProfile | None, total_processes: int | None,
                 rank_cpus: tuple[int, ...] | None,
                 locate: Callable[[KeyPath], SourceLocation] | None,
                 cli_address: str | None, ranks_per_node: int | None):
        self.c = config
        self.topology = topology
        self.site = site
        self.total = total_processes
        self.rank_cpus = rank_cpus
        self.locate = locate
        self.cli_address = cli_address
        self.ranks_per_node = ranks_per_node
        self.catalogue: Catalogue = catalogue()
        self.issues: list[ConfigIssue] = []
        self.model = margo_model(self.margo())

    def add(self, rule: int, path: KeyPath, message: str, hint: str | None = None,
            severity: Severity = "error") -> None:
        loc = self.locate(path) if self.locate else None
        self.issues.append(ConfigIssue(rule, path, message, hint, severity, loc))

    # ---- helpers -------------------------------------------------------------------------
    def engines(self) -> list[tuple[KeyPath, dict[str, Any]]]:
        m = self.c.get("margo", {})
        if isinstance(m, list):
            return [(("margo", i), e) for i, e in enumerate(m) if isinstance(e, dict)]
        return [(("margo",), m)] if isinstance(m, dict) else []

    def pools(self) -> list[dict[str, Any]]:
        abt = self.margo().get("argobots", {})
        pools = abt.get("pools", []) if isinstance(abt, dict) else []
        return [p for p in pools if isinstance(p, dict)] if isinstance(pools, list) else []

    def xstreams(self) -> list[dict[str, Any]]:
        abt = self.margo().get("argobots", {})
        xs = abt.get("xstreams", []) if isinstance(abt, dict) else []
        return [x for x in xs if isinstance(x, dict)] if isinstance(xs, list) else []

    def pool_names(self) -> list[str]:
        """Every pool Margo creates (the user's, the implicit __primary__, the ones
        use_progress_thread / rpc_thread_count add)."""
        if self.model is not None:
            return list(self.model.pools)
        names = [str(p.get("name", f"__pool_{i}__")) for i, p in enumerate(self.pools())]
        if "__primary__" not in names:
            names.append("__primary__")
        return names

    def resolve_pool(self, ref: Any) -> str | None:
        """Pool name a reference (name or index) designates, None if it designates none."""
        names = self.pool_names()
        if _is_int(ref):
            return names[ref] if 0 <= ref < len(names) else None
        if isinstance(ref, str):
            return ref if ref in names or ref == "__primary__" else None
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

    def providers(self) -> list[dict[str, Any]]:
        p = self.c.get("providers", [])
        return [x if isinstance(x, dict) else {} for x in p] if isinstance(p, list) else []

    # ---- rules ---------------------------------------------------------------------------
    def run(self) -> list[ConfigIssue]:
        m = self.c.get("margo", {})
        if m is not None and not isinstance(m, dict | list):
            self.add(3, ("margo",), '"margo" must be an object (or an array of engines)')
            return self.issues
        self.top_level_sections()
        self.rule1_2_protocol()
        self.rule3_pools()
        self.rule4_primary()
        if not any(i.severity == "error" and i.path[:1] == ("margo",) for i in self.issues):
            self.rule5_6_margo_warnings()  # Margo's sanity check runs once its init succeeded
        self.rule7_8_9_cpus()
        self.rule10_cxi()
        self.rule11_spack()
        self.rule12_libraries()
        self.rule13_providers()
        self.rule14_multiprocess()
        self.rule15_readiness()
        return self.issues

    def top_level_sections(self) -> None:
        for key in self.c:
            if key in TOP_LEVEL_KEYS or key in (ENGINE_SECTION, "__if__"):
                continue
            what = ("a section of the older seed-document format" if key in SEED_SECTIONS
                    else "an unknown top-level key")
            self.add(12, (key,), f'"{key}" is {what}: Bedrock 0.16 ignores it silently (it is '
                     "not in the running config)",
                     "remove it; its providers belong in \"providers\" with a \"libraries\" "
                     "entry for their module" if key in SEED_SECTIONS else "remove it",
                     severity="warning")

    def rule1_2_protocol(self) -> None:
        mp = self.margo_path()
        addr = self.address()
        path = (*mp, "mercury", "address")
        infer = ('Could not infer protocol for engine 0: no address provided and no valid '
                 'mercury.address found in configuration')
        valid = addr is not None and ":" in addr
        if self.cli_address == NO_CLI_ADDRESS and not valid:
            self.add(1, path if addr is not None else (*mp, "mercury"),
                     f"Bedrock: {infer}" + (f" ({addr!r} has no \":\")" if addr else ""),
                     f'write "{addr or "ofi+tcp"}://" or give the protocol on the bedrock '
                     "command line")
            return
        if self.cli_address and addr is not None and not valid:
            self.add(1, path, f"mercury.address {addr!r} is not an address (Bedrock: "
                     f"\"{infer}\"); it works only because the command line gives "
                     f"{self.cli_address!r}", f'write "{addr}://"', severity="warning")
            return
        if addr is None:
            if self.cli_address is None:
                self.add(1, (*mp, "mercury"), "no mercury.address: the protocol must then be "
                         "given on the bedrock command line", "set margo.mercury.address to the "
                         "protocol, e.g. \"ofi+tcp://\"", severity="warning")
            return
        if not valid:
            self.add(1, path, f'address {addr!r} has no ":" (Bedrock: "{infer}" unless the '
                     "command line gives the protocol)", f'write "{addr}://"',
                     severity="warning")
            return
        if self.cli_address and _protocol(self.cli_address) != _protocol(addr):
            self.add(1, path, f"mercury.address {addr!r} is ignored: the command line gives "
                     f"{self.cli_address!r}, which Bedrock applies to every engine",
                     "make them agree", severity="warning")
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
        declared = [str(p.get("name", f"__pool_{i}__")) if isinstance(p, dict) else ""
                    for i, p in enumerate(abt.get("pools", []) or [])] \
            if isinstance(abt.get("pools", []), list) else []
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
                    self._check_xstream(item, p, declared)
        for key in ("progress_pool", "rpc_pool"):
            if key not in self.margo():
                continue
            ref = self.margo()[key]
            ok = (_is_int(ref) and 0 <= ref < len(declared)) or (
                isinstance(ref, str) and (ref == "__primary__" or ref in declared))
            if not ok:
                msg = (f'Invalid "{key}" index ({ref})' if _is_int(ref) else
                       f'Could not find element named "{ref}" in "argobots.pools" array'
                       if isinstance(ref, str) else
                       f'"{key}" field in configuration should be an integer or a string')
                self.add(3, (*mp, key), msg, "define the pool or use an existing one")
        bed = self.c.get("bedrock", {})
        if bed is not None and not isinstance(bed, dict):
            self.add(3, ("bedrock",), 'Invalid entry type for "bedrock" (expected object)',
                     'write "bedrock": {"pool": "<name>", "provider_id": 0}')
        elif isinstance(bed, dict) and "pool" in bed:
            ref = bed["pool"]
            if not isinstance(ref, str):
                self.add(3, ("bedrock", "pool"), "Invalid type in Bedrock's \"pool\" entry "
                         f"(got {_json_type(ref)}: Bedrock 0.16 takes a pool name only)",
                         "write the pool's name")
            elif self.resolve_pool(ref) is None:
                self.add(3, ("bedrock", "pool"), f'Could not find pool with name "{ref}"',
                         "use a pool defined in margo.argobots.pools")

    def _check_xstream(self, item: dict[str, Any], p: KeyPath, declared: list[str]) -> None:
        for key, expected in (("cpubind", "int"), ("affinity", "array"),
                              ("scheduler", "object")):
            if key in item and _json_type(item[key]) != expected:
                self.add(3 if key == "scheduler" else 8, (*p, key),
                         f'Invalid type for "{key} in xstream configuration (expected '
                         f"{expected}, got {_json_type(item[key])})",
                         "write the CPU id as a number" if key == "cpubind" else None)
        sched = item.get("scheduler", {})
        if not isinstance(sched, dict):
            return
        st = sched.get("type", "basic_wait")
        if st not in SCHEDULER_TYPES:
            self.add(3, (*p, "scheduler", "type"),
                     f'Invalid enum value for scheduler.type ("{st}")',
                     "use one of: " + ", ".join(SCHEDULER_TYPES))
        pools = sched.get("pools", [])
        if not isinstance(pools, list) or not pools:
            self.add(3, (*p, "scheduler", "pools"), "the scheduler needs at least one pool",
                     'write e.g. "pools": ["rpc_pool"]')
            return
        for j, ref in enumerate(pools):
            if _is_int(ref):
                if not 0 <= ref < len(declared):
                    self.add(3, (*p, "scheduler", "pools", j),
                             f"Invalid pool index ({ref}) in scheduler configuration",
                             "define it in argobots.pools")
            elif not isinstance(ref, str) or (ref not in declared and ref != "__primary__"):
                self.add(3, (*p, "scheduler", "pools", j),
                         f'Invalid reference to pool "{ref}" in scheduler configuration',
                         "define it in argobots.pools")

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

    def rule5_6_margo_warnings(self) -> None:
        """Margo warns that a pool is never or only sometimes executed, or delayed by the
        progress loop, and ignores settings that an explicit pool overrides: errors here,
        quoting Margo's warning."""
        mp = self.margo_path()
        m = self.margo()
        for explicit, ignored in (("progress_pool", "use_progress_thread"),
                                  ("rpc_pool", "rpc_thread_count")):
            if explicit in m and ignored in m:
                self.add(6, (*mp, ignored), f'Margo warns: "{ignored}" will be ignored because '
                         f'"{explicit}" field was specified', f"give either {explicit} or "
                         f"{ignored}")
        if self.model is None:
            return
        n_declared = len(self.pools())
        for index, text in self.model.warnings():
            path = (*mp, "argobots", "pools", index) if index < n_declared else (*mp, "argobots")
            rule = 5 if "not currently associated" in text or "not the first pool" in text else 6
            self.add(rule, path, f"Margo warns: {text}",
                     "give the pool an xstream whose scheduler lists it first" if rule == 5
                     else "give the progress pool an xstream of its own")
        if self.model.rpc == self.model.progress and (
                "rpc_pool" in m or "progress_pool" in m):
            self.add(6, (*mp, "rpc_pool"), f"RPC handlers run in the progress pool "
                     f"{self.model.progress!r}", "add an rpc pool served by its own xstreams",
                     severity="warning")
        for i, prov in enumerate(self.providers()):
            ctype = self.catalogue.get(prov.get("type"))
            need = ctype.pool_xstreams_needed(prov.get("config")) if ctype else 0
            deps = prov.get("dependencies", {})
            pool = self.resolve_pool(_unwrap(deps.get("pool"))) if isinstance(deps, dict) else None
            if need and pool is not None:
                n = sum(1 for _x, pools in self.model.xstreams if pool in pools)
                if n < need:
                    assert ctype is not None and ctype.min_pool_xstreams is not None
                    self.add(5, ("providers", i, "config", *ctype.min_pool_xstreams[0]),
                             f"pool {pool!r} has {n} xstream(s); {ctype.min_pool_xstreams[2]}",
                             f"give pool {pool!r} {need} xstreams", severity="warning")

    def _cpu_items(self) -> list[tuple[KeyPath, Any]]:
        mp = self.margo_path()
        out: list[tuple[KeyPath, Any]] = []
        for i, x in enumerate(self.xstreams()):
            p = (*mp, "argobots", "xstreams", i)
            if isinstance(x.get("affinity"), list):
                out += [((*p, "affinity", j), c) for j, c in enumerate(x["affinity"])]
            if "cpubind" in x:
                out.append(((*p, "cpubind"), x["cpubind"]))
        return out

    def rule7_8_9_cpus(self) -> None:
        mp = self.margo_path()
        items = self._cpu_items()
        pinned = [(p, c) for p, c in items if not (p[-1] == "cpubind" and c == -1)]
        for p, c in items:
            if p[-2] == "affinity" and not _is_int(c):
                self.add(8, p, "Invalid type found in affinity array",
                         "write the CPU id as a number")
        for i, x in enumerate(self.xstreams()):
            cb, aff = x.get("cpubind"), x.get("affinity")
            if _is_int(cb) and cb >= 0 and isinstance(aff, list) and aff and cb not in aff:
                self.add(8, (*mp, "argobots", "xstreams", i, "cpubind"),
                         f"cpubind {cb} is not in affinity {aff}: margo applies cpubind last, "
                         "so the affinity list is silently lost",
                         "give only affinity (preferred), or only cpubind")
        ignored = "Argobots cannot pin to it and silently keeps its default placement"
        if self.topology is not None:
            topo = self.topology
            reserved = {cpu for core in topo.cores if core.index in topo.reserved
                        for cpu in core.cpus}
            for p, c in pinned:
                if not _is_int(c) or c < 0:
                    continue
                if c not in topo.all_cpus:
                    self.add(8, p, f"CPU {c} does not exist on this node (CPUs 0-"
                             f"{max(topo.all_cpus)}): {ignored}",
                             "use absolute OS CPU ids of the node", severity="warning")
                elif c in reserved:
                    self.add(8, p, f"CPU {c} belongs to a core reserved for the OS",
                             "use a CPU of a core not in node.reserved_cores")
                elif c not in topo.allowed_cpus:
                    self.add(8, p, f"CPU {c} is outside the allowed cpuset: {ignored}",
                             "use a CPU in node.allowed_cpus / online_cpus", severity="warning")
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
        if self.ranks_per_node and self.ranks_per_node > 1 and self.model is not None:
            pinned_names = {str(x.get("name")) for x in self.xstreams()
                            if "cpubind" in x or isinstance(x.get("affinity"), list)}
            loose = [n for n, _ in self.model.xstreams if n not in pinned_names]
            if loose:
                self.add(9, (*mp, "argobots"), f"{self.ranks_per_node} ranks per node with "
                         f"unpinned xstreams ({', '.join(loose)}): Argobots built with affinity "
                         "pins xstream i of every rank to CPU i mod N of its cpuset, so ranks "
                         "that share a cpuset all put __primary__ on the same CPU",
                         "give every xstream an affinity list (generate does), or bind each "
                         "rank to its own cores", severity="warning")

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

    # ---- libraries and providers ----------------------------------------------------------
    def loaded_types(self) -> tuple[set[str], bool]:
        """Provider types the ``libraries`` register, and whether an unknown module library
        (which may register more) is loaded."""
        libs = self.c.get("libraries", [])
        types: set[str] = set()
        foreign = False
        for lib in libs if isinstance(libs, list) else []:
            if not isinstance(lib, str):
                continue
            registered = self.catalogue.by_library(lib)
            types.update(c.name for c in registered)
            foreign = foreign or not registered
        return types, foreign

    def rule12_libraries(self) -> None:
        libs = self.c.get("libraries", [])
        if libs is None:
            return
        if not isinstance(libs, list):
            self.add(12, ("libraries",), '"libraries" field needs to be an array',
                     'write ["libyokan-bedrock-module.so", ...] (the object form was dropped)')
            return
        for i, lib in enumerate(libs):
            if not isinstance(lib, str):
                self.add(12, ("libraries", i), "Module library should be a string")
                continue
            if self.catalogue.by_library(lib):
                continue
            if Path(lib).is_absolute() and Path(lib).is_file():
                continue
            if lib.endswith("-bedrock-module.so"):
                self.add(12, ("libraries", i), f"{lib} is not a module of the component "
                         "catalogue: Bedrock must find it on LD_LIBRARY_PATH (\"Could not dlopen "
                         f"library {lib}\" otherwise)", "add the component to "
                         "share/components.json, or load it by absolute path",
                         severity="warning")
            else:
                self.add(12, ("libraries", i), f"{lib} is not a Bedrock module library "
                         "bedrock-deploy knows; unless it is on the library path Bedrock fails "
                         f'with "Could not dlopen library {lib}: {lib}: cannot open shared '
                         'object file: No such file or directory"',
                         "list the module libraries of the providers' types, e.g. "
                         "libyokan-bedrock-module.so")
        types, foreign = self.loaded_types()
        for i, prov in enumerate(self.providers()):
            t = prov.get("type")
            if not isinstance(t, str) or t in types:
                continue
            ctype = self.catalogue.get(t)
            if ctype is not None:
                self.add(12, ("providers", i, "type"), f"provider type {t!r} needs "
                         f'{ctype.library} in "libraries" (Bedrock: Could not find registration '
                         f'function for module "{t}")', f'add "{ctype.library}" to libraries')
            elif not foreign:
                self.add(12, ("providers", i, "type"), f'Could not find registration function '
                         f'for module "{t}": no library in "libraries" provides type {t!r}',
                         "known types: " + ", ".join(self.catalogue.components))

    def _schema_error(self, path: KeyPath, prov: Any) -> str | None:
        """The first error of Bedrock's provider JSON schema (ProviderManager.cpp), worded as
        json-schema-validator prints it."""
        def at(pointer: str, value: Any, what: str) -> str:
            return (f"Error validating JSON (ProviderManager): At {pointer} of {_dump(value)} - "
                    f"{what}")
        if not isinstance(prov, dict):
            return at("", prov, "unexpected instance type")
        for key in ("name", "type"):
            if key not in prov:
                return at("", prov, f"required property '{key}' not found in object")
        for key in sorted(prov):
            v = prov[key]
            if key == "name":
                if not isinstance(v, str):
                    return at("/name", v, "unexpected instance type")
                if not NAME_RE.match(v):
                    return at("/name", v, "instance does not match regex pattern: "
                              "^[a-zA-Z_][a-zA-Z0-9_]*$")
            elif key == "provider_id":
                if not _is_int(v):
                    return at("/provider_id", v, "unexpected instance type")
                if v > 65535:
                    return at("/provider_id", v, "instance exceeds maximum of 65535")
                if v < 0:
                    return at("/provider_id", v, "instance is below minimum of 0")
            elif key == "type" and not isinstance(v, str):
                return at("/type", v, "unexpected instance type")
            elif key == "tags":
                if not isinstance(v, list):
                    return at("/tags", v, "unexpected instance type")
                for j, t in enumerate(v):
                    if not isinstance(t, str):
                        return at(f"/tags/{j}", t, "unexpected instance type")
            elif key == "dependencies":
                if not isinstance(v, dict):
                    return at("/dependencies", v, "unexpected instance type")
                for dk in sorted(v):
                    dv = v[dk]
                    ok = isinstance(dv, str) or _is_int(dv) or (isinstance(dv, list) and all(
                        isinstance(e, str) or _is_int(e) for e in dv))
                    if not ok:
                        return at("/dependencies", v, f"validation failed for additional "
                                  f"property '{dk}': no subschema has succeeded, but one of "
                                  "them is required to validate. Type: anyOf, number of "
                                  "failed subschemas: 3")
            elif key == "config" and not isinstance(v, dict):
                return at("/config", v, "unexpected instance type")
            elif key == "engine":
                if not _is_int(v):
                    return at("/engine", v, "unexpected instance type")
                if v < 0:
                    return at("/engine", v, "instance is below minimum of 0")
        return None

    def rule13_providers(self) -> None:
        provs = self.c.get("providers", [])
        if provs is None:
            return
        if not isinstance(provs, list):
            self.add(13, ("providers",), "Invalid JSON configuration passed to "
                     "ProviderManager::addProviderListFromJSON (should be an array)",
                     "write a JSON array of provider objects")
            return
        bed = self.c.get("bedrock", {})
        bid = bed.get("provider_id", 0) if isinstance(bed, dict) else 0
        bid = bid % 65536 if _is_int(bid) else 0
        names: dict[str, int] = {}
        ids: dict[int, int] = {}
        n_engines = len(self.engines()) or 1
        for i, prov in enumerate(provs):
            p = ("providers", i)
            schema = self._schema_error(p, prov)
            if schema is not None:
                self.add(13, p, schema, "see the provider schema: name, type, provider_id "
                         "0..65535, tags [str], config {}, dependencies {key: str|int|[...]}")
                continue
            for key in sorted(set(prov) - {"name", "type", "provider_id", "tags", "config",
                                           "dependencies", "engine", "__if__"}):
                self.add(13, (*p, key), f'provider key "{key}" is not part of Bedrock\'s provider '
                         "schema: Bedrock 0.16 ignores it",
                         'write "dependencies": {"pool": "<name>"}' if key == "pool"
                         else "remove it", severity="warning")
            engine = prov.get("engine", 0)
            if engine >= n_engines:
                self.add(13, (*p, "engine"), f"Invalid engine index {engine} (only {n_engines} "
                         "engines available)", "use 0 or an index into margo")
            pid = prov.get("provider_id", 65535)
            if pid == bid:
                self.add(13, (*p, "provider_id"), f"Bedrock already uses provider ID {bid}",
                         "use an id other than bedrock.provider_id")
            self._dependencies(i, prov, provs[:i])
            name = prov["name"]
            if name in names:
                self.add(13, (*p, "name"), f'Name "{name}" already used by another provider '
                         f"(providers[{names[name]}])", "give each provider its own name")
            names.setdefault(name, i)
            if pid == 65535:
                if "provider_id" not in prov:
                    continue
                self.add(13, (*p, "provider_id"), "provider_id 65535 means \"assign one\": "
                         "Bedrock picks the lowest free id", "give an id below 65535, or "
                         "leave provider_id out", severity="warning")
                continue
            if pid in ids:
                self.add(13, (*p, "provider_id"), f"Another provider already uses provider ID "
                         f"{pid} (providers[{ids[pid]}])", "give each its own id")
            ids.setdefault(pid, i)
            self._component_config(i, prov)

    def _dependencies(self, i: int, prov: dict[str, Any], earlier: list[Any]) -> None:
        """Bedrock resolves the keys the module declares (and drops the others)."""
        p = ("providers", i)
        ctype = self.catalogue.get(prov["type"])
        deps = prov.get("dependencies", {})
        if ctype is None:
            return
        for key in deps:
            if ctype.dependency(key) is None and not ctype.open_dependencies:
                self.add(13, (*p, "dependencies", key), f"dependency key {key!r} is not "
                         f"declared by the {ctype.name} module (it declares: "
                         f"{', '.join(d.name for d in ctype.dependencies) or 'none'}): Bedrock "
                         "0.16 drops it silently", "remove it", severity="warning")
        for dep in ctype.dependencies:
            where = (*p, "dependencies", dep.name)
            prefix = f'While resolving dependency "{dep.name}" (type "{dep.type}"): '
            if dep.name not in deps:
                if dep.required:
                    self.add(13, (*p, "dependencies"), f'{prefix}Missing dependency "{dep.name}" '
                             f'of type "{dep.type}" in provider configuration',
                             f'add "dependencies": {{"{dep.name}": "..."}}')
                continue
            value = deps[dep.name]
            values: list[Any]
            if not dep.array:
                if isinstance(value, list) and len(value) == 1:
                    value = value[0]
                if isinstance(value, list):
                    self.add(13, where, f"{prefix}[json.exception.type_error.302] type must be "
                             "number, but is array", "give one value")
                    continue
                values = [value]
            else:
                values = value if isinstance(value, list) else [value]
            for v in values:
                err = self._resolve(dep.type, v, earlier)
                if err:
                    self.add(13, where, prefix + err, "refer to an existing pool, or to a "
                             "provider created earlier (name, type:id, name@location)")

    def _resolve(self, dtype: str, spec: Any, earlier: list[Any]) -> str | None:
        """DependencyFinder::find: the error it would raise, None if it resolves (or cannot
        be known before the service runs: remote providers)."""
        if dtype == "pool":
            if self.resolve_pool(spec) is not None:
                return None
            return (f'Could not find pool at index {spec}' if _is_int(spec)
                    else f'Could not find pool with name "{spec}"')
        if dtype == "xstream":
            names = [n for n, _ in self.model.xstreams] if self.model else []
            if (_is_int(spec) and 0 <= spec < len(names)) or spec in names:
                return None
            return (f'Could not find xstream at index "{spec}"' if _is_int(spec)
                    else f'Could not find xstream with name "{spec}"')
        if dtype == "margo":
            return None
        if _is_int(spec):
            return "Only pools, xstreams, and margo instances can be referenced by index"
        spec = str(spec)
        m = re.fullmatch(r"([a-zA-Z_][a-zA-Z0-9_]*)(?::([0-9]+))?(?:@(.+))?", spec)
        if m is None:
            return f'Ill-formated dependency specification "{spec}"'
        ident, pid, loc = m.group(1), m.group(2), m.group(3)
        provs = [q for q in earlier if isinstance(q, dict)]
        if loc is None or loc == "local":
            if pid is not None:
                if loc is not None and ident != dtype:
                    return f'Invalid provider type in "{spec}" (expected {dtype})'
                key = f"{dtype}:{pid}"
                found = next((q for q in provs if q.get("type") == dtype
                              and q.get("provider_id") == int(pid)), None)
                if found is None:
                    return (f"Could not find local provider of type {dtype} with id {pid}"
                            if loc else f'Could not find provider with spec "{key}"')
                return None
            found = next((q for q in provs if q.get("name") == ident), None)
            if found is None:
                return f'Could not find provider with spec "{ident}"'
            if found.get("type") != dtype:
                return (f"Invalid type {dtype} for provider handle to provider of type "
                        f"{found.get('type')}" if loc else
                        f'Invalid type {found.get("type")} for dependency "{ident}" '
                        f"(expected {dtype})")
            return None
        if pid is not None and ident != dtype:
            return f'Invalid provider type in "{spec}" (expected {dtype})'
        return None

    def _component_config(self, i: int, prov: dict[str, Any]) -> None:
        """What the module itself refuses in its config (catalogue choices, flock)."""
        ctype = self.catalogue.get(prov["type"])
        if ctype is None:
            return
        cfg = prov.get("config", {})
        p = ("providers", i, "config")
        create = (f'While creating provider "{prov["name"]}" of type "{ctype.name}" '
                  "(ModuleManager::createComponent): ")
        for choice, value in ctype.unknown_choices(cfg):
            self.add(13, (*p, *choice.key), f"{create}Invalid configuration (unknown "
                     f"{choice.path} {_dump(value)}; the {ctype.name} module has: "
                     f"{', '.join(choice.values)})", "use one of: " + ", ".join(choice.values))
        for choice in ctype.choices:
            if choice.required and choice.selected(cfg) is None and ctype.name != "flock":
                self.add(13, p, f"{create}Invalid configuration (no {choice.path})",
                         f"set {choice.path}")
        if ctype.name == "flock":
            self._flock(i, prov, cfg, create)

    def _flock(self, i: int, prov: dict[str, Any], cfg: dict[str, Any], create: str) -> None:
        p = ("providers", i, "config")
        if "bootstrap" not in cfg:
            self.add(14, p, f'{create}[flock] "bootstrap" field not found in provider '
                     "configuration", 'add "bootstrap": "mpi" (or "self", "join", a list)')
            return
        boot = cfg["bootstrap"]
        boots = boot if isinstance(boot, list) else [boot]
        if not all(isinstance(b, str) for b in boots):
            self.add(14, (*p, "bootstrap"), f'{create}[flock] "bootstrap" field should be of '
                     "type string or array" if not isinstance(boot, list) else
                     f'{create}[flock] "bootstrap" array should only contain strings',
                     'write e.g. "mpi" or ["join", "mpi"]')
            return
        tried: list[str] = []
        for j, b in enumerate(boots):
            last = j == len(boots) - 1
            if b not in FLOCK_BOOTSTRAPS:
                msg = f'[flock] Invalid value "{b}" for "bootstrap" field'
                if last:
                    self.add(14, (*p, "bootstrap"), create + msg,
                             "use self, mpi or join (or a list tried in order)")
                else:
                    self.add(14, (*p, "bootstrap"), f"{msg}: Bedrock logs it and tries the "
                             "next method", "remove it", severity="warning")
                continue
            tried.append(b)
            if b in ("self", "mpi"):
                break  # always succeeds (mpi: Bedrock built +mpi), later ones are never tried
        group = cfg.get("group")
        gtype = group.get("type") if isinstance(group, dict) else None
        if group is None:
            self.add(14, p, f"{create}[flock] No backend type provided for the group",
                     'add "group": {"type": "static"}')
        if "join" in tried:
            if not isinstance(cfg.get("file"), str):
                self.add(14, (*p, "bootstrap"), f'{create}[flock] "file" field not found (or '
                         "is not a string) required to join the group",
                         "add the group file path")
            elif gtype == "static":
                if tried == ["join"]:
                    self.add(14, (*p, "group", "type"), f"{create}[flock] Failed to initialized "
                             "group with flock_group_view_init_from_file when the group file is "
                             "missing, and \"[flock] Cannot join a static group\" when it "
                             "exists", 'use "centralized" for staggered starts')
                else:
                    self.add(14, (*p, "group", "type"), "bootstrap tries \"join\" first on a "
                             "static group: if the group file exists the provider fails "
                             "([flock] Cannot join a static group); it only works as a fallback "
                             "when the file is missing", 'use "centralized", or drop "join"',
                             severity="warning")
        if "mpi_ranks" in cfg:
            ranks = cfg["mpi_ranks"]
            if not isinstance(ranks, list):
                self.add(14, (*p, "mpi_ranks"), f'{create}[flock] "mpi_ranks" field should be '
                         "an array", "write e.g. [0, 1]")
            elif not all(_is_int(r) for r in ranks):
                self.add(14, (*p, "mpi_ranks"), f'{create}[flock] "mpi_ranks" should contain '
                         "only integers", "write e.g. [0, 1]")
            elif "mpi" in tried and self.total is not None and any(
                    not 0 <= r < self.total for r in ranks):
                self.add(14, (*p, "mpi_ranks"), f'{create}[flock] Invalid rank in "mpi_ranks" '
                         f"list (the world has {self.total} processes)",
                         f"use ranks 0..{self.total - 1}")

    def rule14_multiprocess(self) -> None:
        provs = self.providers()
        for i, prov in enumerate(provs):
            if "__if__" in prov and not isinstance(prov["__if__"], bool | str):
                self.add(14, ("providers", i, "__if__"), "__if__ condition should be a string "
                         "or a boolean", 'write "$MPI_COMM_WORLD.rank == 0"')
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
        for i, p in enumerate(provs):
            cfg = p.get("config", {})
            boot = cfg.get("bootstrap") if p.get("type") == "flock" and isinstance(
                cfg, dict) else None
            if self.total is not None and self.total > 1 and boot in ("self", ["self"]):
                self.add(14, ("providers", i, "config", "bootstrap"),
                         f'bootstrap "self" with {self.total} processes makes each process its '
                         "own one-member group",
                         'use "mpi" (one launch for all ranks) or ["join", "mpi"]')
        reasons = config_uses_mpi(self.c)
        req = [s.replace(" ", "") for s in self.site.spack.require.get("mochi-bedrock", [])] \
            if self.site is not None else []
        if reasons and any("~mpi" in s for s in req):
            self.add(14, (), "the config uses MPI (" + "; ".join(reasons) + ") but the site "
                     "requires mochi-bedrock~mpi: $MPI_COMM_WORLD is then null and flock's mpi "
                     "bootstrap fails (\"[flock] Flock was not built with MPI support\")",
                     "require mochi-bedrock+mpi in the site's spack.require, or drop the MPI "
                     "use")
        for k, (ep, eng) in enumerate(self.engines()):
            if k == 0:
                continue
            for key in ("argobots", "use_progress_thread", "rpc_thread_count"):
                if key in eng:
                    self.add(14, (*ep, key), f"child margo engine {k} must not contain {key!r}",
                             "remove it: children share the parent's Argobots setup")

    def rule15_readiness(self) -> None:
        flocks = [(i, p) for i, p in enumerate(self.providers()) if p.get("type") == "flock"]
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


def _unwrap(v: Any) -> Any:
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def validate_config(config: Any, *, topology: Topology | None = None,
                    site: SiteProfile | None = None, total_processes: int | None = None,
                    rank_cpus: tuple[int, ...] | None = None,
                    locate: Callable[[KeyPath], SourceLocation] | None = None,
                    cli_address: str | None = None, ranks_per_node: int | None = None,
                    ) -> list[ConfigIssue]:
    """Every issue of one Bedrock config (errors first).

    ``cli_address``: the address given on the ``bedrock`` command line (it overrides
    ``margo.mercury.address``), :data:`NO_CLI_ADDRESS` if none is given, None if unknown.
    ``ranks_per_node``: how many ranks share a node (unpinned xstreams then collide).
    """
    if topology is None and site is not None:
        topology = Topology.from_node(site.node)
    if isinstance(config, list):
        loc = locate(()) if locate else None
        return [ConfigIssue(14, (), "Bedrock 0.16.1 cannot read a configuration that is a JSON "
                            "array (it stops with \"[json.exception.invalid_iterator.207] cannot "
                            "use key() for non-object iterators\" while expanding dotted keys)",
                            "write one config object; give rank-specific parts an \"__if__\" "
                            "condition such as \"$MPI_COMM_WORLD.rank == 0\"", "error", loc)]
    if not isinstance(config, dict):
        loc = locate(()) if locate else None
        return [ConfigIssue(3, (), "a Bedrock config is a JSON object", "start with '{'",
                            "error", loc)]
    expanded, origin = expand_dotted(config)
    expanded = filter_false_conditions(expanded)

    def located(path: KeyPath) -> SourceLocation:
        assert locate is not None
        for n in range(len(path), 0, -1):
            if path[:n] in origin:
                return locate((*origin[path[:n]], *path[n:]))
        return locate(path)

    issues = _Checker(expanded, topology=topology, site=site, total_processes=total_processes,
                      rank_cpus=rank_cpus, locate=located if locate else None,
                      cli_address=cli_address, ranks_per_node=ranks_per_node).run()
    return sorted(issues, key=lambda x: (x.severity != "error",))


def validate_deployment(configs: list[dict[str, Any]], rank_cpus: list[tuple[int, ...]], *,
                        site: SiteProfile | None = None, total_processes: int | None = None,
                        cli_address: str | None = None,
                        ) -> list[tuple[int, ConfigIssue]]:
    """Check each rank's config, and that no CPU is pinned by two local ranks."""
    out: list[tuple[int, ConfigIssue]] = []
    owner: dict[int, int] = {}
    for rank, (cfg, cpus) in enumerate(zip(configs, rank_cpus, strict=True)):
        out += [(rank, x) for x in validate_config(cfg, site=site, rank_cpus=cpus,
                                                   total_processes=total_processes,
                                                   cli_address=cli_address,
                                                   ranks_per_node=len(configs))]
        for c in cpus:
            if c in owner:
                out.append((rank, ConfigIssue(9, (), f"CPU {c} is bound to local ranks "
                                              f"{owner[c]} and {rank}")))
            owner.setdefault(c, rank)
    return out


def load_config_file(path: str | Path) -> YamlDocument:
    return load_json_located(read_input_text(path), str(path))


def validate_file(path: str | Path, *, site: SiteProfile | None = None,
                  total_processes: int | None = None, cli_address: str | None = None,
                  ranks_per_node: int | None = None) -> list[ConfigIssue]:
    doc = load_config_file(path)
    return validate_config(doc.data, site=site, total_processes=total_processes,
                           locate=doc.locate, cli_address=cli_address,
                           ranks_per_node=ranks_per_node)


def component_of(provider: dict[str, Any]) -> ComponentType | None:
    """The catalogue entry of a provider's type (None if the catalogue does not know it)."""
    return catalogue().get(provider.get("type"))
