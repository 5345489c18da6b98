"""The service description: which Bedrock providers to run, where, with which threads.

A service is given either as a YAML file (validated by the pydantic models below, unknown keys
rejected, every error located at file:line:column) or as an **existing Bedrock JSON config**
(for instance a Mofka config): then its ``libraries`` and ``providers`` are kept as written and
only its ``margo`` section is re-planned from the site's topology.

YAML form (see ``share/examples/kv-service.yaml``)::

    name: kv
    nodes: 2
    processes_per_node: 4
    threads:                  # per process
      progress: dedicated     # dedicated (own xstream, alone) | shared (on __primary__)
      rpc: 2                  # rpc xstreams; 0 = RPC handlers run on __primary__
      io: 1                   # io xstreams, created only if a component uses pool: io
      primary: shared         # dedicated (own core) | shared (on the rpc xstreams' cores)
    placement:
      smt: avoid              # avoid (one xstream per physical core) | use (hardware threads)
      too_few_cores: error    # error | share (merge roles onto the cores there are)
      pin: true               # emit affinity for every xstream
    components:
      - {name: group, type: flock}
      - {name: kv, type: yokan, config: {database: {type: map}}}

Provider ids not given are assigned 1, 2, ... in component order (skipping the ones given);
Bedrock's own provider id is 0 and is never used (a provider with Bedrock's id is refused: "Bedrock
already uses provider ID 0", mochi-bedrock 0.16.1 src/ProviderManager.cpp).
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bedrock_deploy.components import catalogue
from bedrock_deploy.diagnostics import InputError, KeyPath, Problem, SourceLocation, fail
from bedrock_deploy.files import is_file, read_input_text
from bedrock_deploy.plan import Role
from bedrock_deploy.validation import validate_model
from bedrock_deploy.yaml_source import Locations, YamlDocument, locate, parse_yaml

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
RANK0_CONDITION = "$MPI_COMM_WORLD.rank == 0"  # mofka docs/_code/advanced-config.json

# Provider type -> Bedrock module library, and the config written when a service gives none
# (flock: each missing key is filled in; its group file is plan.GROUP_FILE): both from the
# component catalogue (share/components.json).
KNOWN_LIBRARIES: dict[str, str] = catalogue().libraries
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    name: c.default_config for name, c in catalogue().components.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressMode(StrEnum):
    dedicated = "dedicated"
    shared = "shared"


class PrimaryMode(StrEnum):
    dedicated = "dedicated"
    shared = "shared"


class SmtPolicy(StrEnum):
    avoid = "avoid"
    use = "use"


class ShortagePolicy(StrEnum):
    error = "error"
    share = "share"


class Threads(_Strict):
    """Execution streams per process. Example (YAML): ``threads: {progress: dedicated,
    rpc: 2, io: 1, primary: shared}``; in Python: ``bd.service(..., threads={"rpc": 2})``."""

    progress: ProgressMode = Field(
        default=ProgressMode.dedicated,
        description="'dedicated': the Mercury progress loop gets its own xstream and core; "
        "'shared': it runs on __primary__")
    rpc: int = Field(default=1, ge=0, le=256,
                     description="RPC xstreams per process (0: RPC handlers run on __primary__)")
    io: int = Field(default=1, ge=1, le=256,
                    description="io xstreams per process, created only if a component uses "
                    "pool: io (raised to num_urings+1 for abt_io with io_uring)")
    primary: PrimaryMode = Field(
        default=PrimaryMode.dedicated,
        description="'dedicated': __primary__ (main thread) gets its own core; 'shared': it "
        "shares the rpc xstreams' cores")


class Placement(_Strict):
    """Where the execution streams go. Example (YAML): ``placement: {smt: avoid,
    too_few_cores: share, pin: true}``; in Python: ``bd.service(..., placement={"smt":
    "use"})``."""

    smt: SmtPolicy = Field(
        default=SmtPolicy.avoid,
        description="'avoid': one xstream per physical core; 'use': xstreams on hardware threads")
    too_few_cores: ShortagePolicy = Field(
        default=ShortagePolicy.error,
        description="'error': fail when a node has too few cores; 'share': give each process "
        "the cores there are and merge its roles onto fewer xstreams, one per core "
        "(docs/layout.md; recorded in the manifest)")
    pin: bool = Field(default=True, description="pin every xstream (affinity lists)")


class MargoOptions(_Strict):
    """Margo settings a service may tune (pools and xstreams are planned, not given)."""

    progress_timeout_ub_msec: int | None = Field(
        default=None, ge=0, description="progress loop timeout (0 = busy polling; default 100)")
    progress_spindown_msec: int | None = Field(default=None, ge=0,
                                               description="polling after activity (default 10)")
    handle_cache_size: int | None = Field(default=None, ge=0, description="default 256")
    enable_abt_profiling: bool | None = None


class PoolRole(StrEnum):
    rpc = "rpc"
    io = "io"


class Component(_Strict):
    """One Bedrock provider of the service. Example (YAML): ``- {name: kv, type: yokan,
    config: {database: {type: map}}}``; in Python: ``bd.component("kv", "yokan")``."""

    name: str = Field(pattern=IDENTIFIER, description="provider name, an identifier")
    type: str = Field(pattern=IDENTIFIER,
                      description="flock, yokan, abt_io, warabi, mofka, or any module type")
    provider_id: int | None = Field(default=None, ge=1, le=65535,
                                    description="1..65535 (0 is Bedrock's own); default: next free")
    pool: PoolRole | None = Field(
        default=None, description="'rpc' or 'io' (default: io for abt_io, rpc otherwise)")
    rank0_only: bool = Field(default=False, description="run this provider on MPI rank 0 only")
    config: dict[str, Any] = Field(default_factory=dict, description="the provider's config")
    dependencies: dict[str, str | int | list[str | int]] = Field(
        default_factory=dict, description="Bedrock dependencies (pool is set from 'pool')")
    tags: list[str] = Field(default_factory=list, description="provider tags, e.g. mofka:master")
    library: str | None = Field(
        default=None, description="module library for types without a known one, e.g. "
        "libfoo-bedrock-module.so")
    condition: str | bool | None = Field(
        default=None, description="raw Bedrock '__if__' (kept from an existing config)")

    @property
    def pool_role(self) -> Role:
        """The pool the provider runs on: as given, else its type's role in the catalogue."""
        if self.pool is not None:
            return Role(self.pool.value)
        ctype = catalogue().get(self.type)
        return Role(ctype.pool_role) if ctype is not None else Role.rpc

    @property
    def module_library(self) -> str | None:
        return self.library or KNOWN_LIBRARIES.get(self.type)

    @property
    def pool_xstreams_needed(self) -> int:
        """Xstreams its pool needs at least (abt_io: num_urings+1; catalogue)."""
        ctype = catalogue().get(self.type)
        return ctype.pool_xstreams_needed(self.config) if ctype is not None else 0

    @model_validator(mode="after")
    def _library_known(self) -> Component:
        if self.module_library is None:
            raise ValueError(
                f"no Bedrock module library is known for type {self.type!r}: add "
                f"'library: lib<module>-bedrock-module.so' (known types: "
                + ", ".join(KNOWN_LIBRARIES) + ")")
        if "pool" in self.dependencies:
            raise ValueError("set the pool with 'pool: rpc' or 'pool: io', not in dependencies "
                             "(the pool names are planned by bedrock-deploy)")
        return self


class ServiceDescription(_Strict):
    """Which Bedrock providers to run, on how many nodes and processes, with which threads.
    Example (YAML): ``name: kv``, ``processes_per_node: 2``, ``components: [{name: kv, type:
    yokan}]``; in Python: ``bd.service("kv", [bd.component("kv", "yokan")],
    processes_per_node=2)``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="service name")
    description: str = ""
    nodes: int = Field(default=1, ge=1, description="compute nodes")
    processes_per_node: int = Field(default=1, ge=1, le=1024, description="processes per node")
    threads: Threads = Field(default_factory=Threads)
    placement: Placement = Field(default_factory=Placement)
    margo: MargoOptions = Field(
        default_factory=lambda: MargoOptions(),
        description="margo tuning, e.g. progress_timeout_ub_msec: 0 (busy polling)")
    components: list[Component] = Field(min_length=1, description="Bedrock providers to run")
    extra_libraries: list[str] = Field(
        default_factory=list, description="more module libraries to load (e.g. mofka's)")
    bedrock_config: str | None = Field(
        default=None, description="an existing Bedrock JSON config (path relative to this "
        "file) whose providers and libraries to run instead of 'components'; its margo "
        "section is re-planned with this file's threads and placement")

    @property
    def uses_io_pool(self) -> bool:
        return any(c.pool_role is Role.io for c in self.components)

    @property
    def io_xstreams(self) -> int:
        """io xstreams per process: the requested count, at least num_urings+1 (abt-io.c)."""
        need = max((c.pool_xstreams_needed for c in self.components if c.pool_role is Role.io),
                   default=0)
        return max(self.threads.io, need) if self.uses_io_pool else 0

    def provider_ids(self) -> dict[str, int]:
        """Component name -> provider id (explicit, else the next free id from 1)."""
        taken = {c.provider_id for c in self.components if c.provider_id is not None}
        out: dict[str, int] = {}
        nxt = 1
        for c in self.components:
            if c.provider_id is not None:
                out[c.name] = c.provider_id
                continue
            while nxt in taken:
                nxt += 1
            out[c.name] = nxt
            taken.add(nxt)
        return out

    def libraries(self) -> list[str]:
        libs: list[str] = []
        for lib in [c.module_library for c in self.components] + list(self.extra_libraries):
            if lib and lib not in libs:
                libs.append(lib)
        return libs

    def with_counts(self, nodes: int | None = None, ppn: int | None = None) -> ServiceDescription:
        update: dict[str, int] = {}
        if nodes is not None:
            update["nodes"] = nodes
        if ppn is not None:
            update["processes_per_node"] = ppn
        return self.model_copy(update=update) if update else self


# Provider config keys that name files or directories, at any depth: flock's group "file";
# the path of yokan's rocksdb, leveldb, lmdb, unqlite, gdbm and tkrzw databases, berkeleydb's
# "home" and "file"; warabi's pmdk and abtio targets' "path". Engines run in DIR/run; what a
# service names must stay there (``../../victim.txt`` would make the job delete and overwrite a
# file outside the deployment).
PATH_KEYS = frozenset({"file", "path", "filename", "home", "dir", "directory"})
PATH_KEY_SUFFIXES = ("_file", "_path", "_filename", "_dir", "_directory")


def _is_path_key(key: str) -> bool:
    return key in PATH_KEYS or key.endswith(PATH_KEY_SUFFIXES)


def path_problem(value: str) -> str | None:
    """Why a path from a service would leave the deployment's run directory (or is unusable),
    or None."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return f"the path {value!r} holds a control character"
    if value.startswith("/"):
        return f"the path {value!r} is absolute: it must stay inside the deployment"
    if value.startswith("~"):
        return f"the path {value!r} starts with '~': it must stay inside the deployment"
    normal = posixpath.normpath(value) if value else value
    if normal == ".." or normal.startswith("../"):
        return f"the path {value!r} leaves the deployment's run directory"
    return None


def check_paths(config: Any, at: KeyPath) -> list[Problem]:
    """Every file or directory a provider config names stays inside DIR/run."""
    problems: list[Problem] = []
    stack: list[tuple[Any, KeyPath]] = [(config, at)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                sub = (*path, str(key))
                if isinstance(value, str) and _is_path_key(str(key)):
                    why = path_problem(value)
                    if why is not None:
                        problems.append(Problem(
                            why, path=sub, hint="write a path relative to the deployment's run "
                            "directory (DIR/run, where the engines run), without '..' above it"))
                else:
                    stack.append((value, sub))
        elif isinstance(node, list):
            stack += [(item, (*path, i)) for i, item in enumerate(node)]
    return sorted(problems, key=lambda p: [str(x) for x in p.path])


def check_service(service: ServiceDescription) -> list[Problem]:
    """Cross-field checks: unique names and provider ids, dependencies on earlier providers,
    files named by providers inside the deployment."""
    problems: list[Problem] = []
    for i, c in enumerate(service.components):
        problems += check_paths(c.config, ("components", i, "config"))
    names: dict[str, int] = {}
    ids: dict[int, int] = {}
    for i, c in enumerate(service.components):
        if c.name in names:
            problems.append(Problem(
                f"component name {c.name!r} is already used by components[{names[c.name]}]",
                path=("components", i, "name"), hint="give each provider its own name"))
        names.setdefault(c.name, i)
        if c.provider_id is not None:
            if c.provider_id in ids:
                problems.append(Problem(
                    f"provider_id {c.provider_id} is already used by "
                    f"components[{ids[c.provider_id]}]",
                    path=("components", i, "provider_id"),
                    hint="leave provider_id out to get the next free id"))
            ids.setdefault(c.provider_id, i)
        for key, dep in c.dependencies.items():
            for ref in dep if isinstance(dep, list) else [dep]:
                if not isinstance(ref, str) or "@" in ref:
                    continue  # remote dependency or index: checked by the validator
                local = ref.split(":")[0] if ":" in ref else ref
                later = [j for j, o in enumerate(service.components)
                         if (o.name == local or o.type == local) and j >= i]
                if later and local not in {o.name for o in service.components[:i]} and \
                        local not in {o.type for o in service.components[:i]}:
                    problems.append(Problem(
                        f"dependency {key!r} refers to {ref!r}, which is created later "
                        f"(components[{later[0]}])",
                        path=("components", i, "dependencies", key),
                        hint="Bedrock creates providers in list order: move the dependency "
                        "before this component"))
                dep_c = next((o for o in service.components[:i] if o.name == local), None)
                if dep_c is not None and dep_c.rank0_only and not c.rank0_only:
                    problems.append(Problem(
                        f"dependency {key!r} refers to {ref!r}, which runs on rank 0 only, but "
                        f"{c.name!r} runs on every rank",
                        path=("components", i, "dependencies", key),
                        hint=f"make {c.name!r} rank0_only too, or depend on '{ref}@0' "
                        "(the provider on MPI rank 0)"))
    return problems


@dataclass
class LoadedService:
    """A validated service, where it came from, and (for a Bedrock JSON) what was kept.

    Example::

        loaded = bd.load_service("share/examples/kv-service.yaml")
        print(loaded.service.name, loaded.file, loaded.kind, loaded.notes)
    """

    service: ServiceDescription
    file: str
    locations: Locations = field(default_factory=dict)
    kind: Literal["yaml", "bedrock-json"] = "yaml"
    notes: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)  # a YAML's bedrock_config
    in_memory: bool = False  # given as Python data (``file`` is a label such as "<service>")
    # the user's own Bedrock JSON (the service itself or its bedrock_config), as written
    source_config: dict[str, Any] | None = None
    source_config_file: str | None = None

    def locate(self, path: KeyPath) -> SourceLocation:
        return locate(self.locations, path, self.file)


def _from_bedrock_json(data: dict[str, Any], file: str,
                       where: Callable[[KeyPath], SourceLocation],
                       name: str | None = None) -> tuple[ServiceDescription, list[str]]:
    """Read an existing Bedrock config: keep providers/libraries, derive thread counts.

    The service is called ``name``, else after the file (``mofka.json`` -> ``mofka``)."""
    notes: list[str] = []
    if not isinstance(data.get("providers", []), list):
        raise fail('"providers" must be an array', path=("providers",),
                   location=where(("providers",)), hint="write a JSON array of provider objects")
    libs = data.get("libraries", [])
    if not isinstance(libs, list) or not all(isinstance(x, str) for x in libs):
        raise fail('"libraries" field needs to be an array of .so names', path=("libraries",),
                   location=where(("libraries",)),
                   hint='write e.g. ["libyokan-bedrock-module.so"] (the object form is rejected '
                   "by Bedrock >= 0.16)")
    margo = data.get("margo", {})
    if isinstance(margo, list):
        raise fail("a margo array (several engines) cannot be re-planned", path=("margo",),
                   location=where(("margo",)), hint="keep a single margo object")
    margo = margo if isinstance(margo, dict) else {}
    threads: dict[str, Any] = {}
    if "rpc_thread_count" in margo and isinstance(margo["rpc_thread_count"], int):
        threads["rpc"] = max(0, margo["rpc_thread_count"])
    if margo.get("use_progress_thread") is True:
        threads["progress"] = "dedicated"
    pools_of_io: set[str] = set()
    components: list[dict[str, Any]] = []
    type_libs = {v: k for k, v in KNOWN_LIBRARIES.items()}
    for i, p in enumerate(data.get("providers", [])):
        if not isinstance(p, dict):
            raise fail("a provider is a JSON object", path=("providers", i),
                       location=where(("providers", i)),
                       hint='write {"name": ..., "type": ..., "provider_id": ...}')
        raw_deps = p.get("dependencies", {}) or {}
        if not isinstance(raw_deps, dict):
            raise fail('"dependencies" must be an object', path=("providers", i, "dependencies"),
                       location=where(("providers", i, "dependencies")),
                       hint='write e.g. {"pool": "__primary__"}')
        deps = dict(raw_deps)
        pool = deps.pop("pool", None)
        role: str | None = None
        ctype = catalogue().get(p.get("type"))
        if (ctype is not None and ctype.pool_role == "io") or (
                isinstance(pool, str) and "io" in pool.lower()):
            role = "io"
            if isinstance(pool, str):
                pools_of_io.add(pool)
        elif pool is not None:
            role = "rpc"
        if pool is not None:
            notes.append(f"provider {p.get('name')!r}: pool {pool!r} becomes the planned "
                         f"{role} pool")
        cond = p.get("__if__")
        comp: dict[str, Any] = {
            k: v for k, v in {
                "name": p.get("name"), "type": p.get("type"),
                "provider_id": p.get("provider_id"), "pool": role,
                "config": p.get("config", {}), "dependencies": deps, "tags": p.get("tags", []),
            }.items() if v is not None}
        if cond == RANK0_CONDITION:
            comp["rank0_only"] = True
        elif cond is not None:
            comp["condition"] = cond
        t = p.get("type")
        if isinstance(t, str) and t not in KNOWN_LIBRARIES:
            lib = next((lib for lib in libs if lib not in type_libs), None)
            if lib:
                comp["library"] = lib
        components.append(comp)
    xs = margo.get("argobots", {}).get("xstreams", []) if isinstance(
        margo.get("argobots"), dict) else []

    def first_pool(x: Any) -> str | None:
        sched = x.get("scheduler") if isinstance(x, dict) else None
        pools = sched.get("pools") if isinstance(sched, dict) else None
        first = pools[0] if isinstance(pools, list) and pools else None
        return first if isinstance(first, str) else None

    io_count = sum(1 for x in xs if first_pool(x) in pools_of_io) if isinstance(xs, list) else 0
    if io_count:
        threads["io"] = io_count
    used = {KNOWN_LIBRARIES.get(str(c.get("type"))) for c in components} | \
        {c.get("library") for c in components}
    svc = {
        "name": name or Path(file).stem.replace(" ", "_") or "service",
        "threads": threads,
        "components": components,
        "extra_libraries": [lib for lib in libs if lib not in used],
    }
    # validate against the model; paths of components map onto providers
    def where_c(path: KeyPath) -> SourceLocation:
        if path[:1] == ("components",):
            return where(("providers", *path[1:]))
        return where(("margo",))
    try:
        service = validate_model(ServiceDescription, svc, where_c)
    except InputError as err:  # name the JSON's keys, not the service model's
        raise InputError([
            replace(p, path=("providers", *p.path[1:])) if p.path[:1] == ("components",)
            else p for p in err.problems]) from None
    problems = check_service(service)
    if problems:
        raise InputError([Problem(p.message, path=("providers", *p.path[1:]),
                                  location=where(("providers", *p.path[1:])), hint=p.hint)
                          for p in problems])
    dropped = sorted(set(data) - {"libraries", "margo", "providers", "bedrock"})
    if dropped:
        notes.append("ignored top-level keys of the Bedrock config: " + ", ".join(dropped))
    notes.append("kept libraries and providers of the Bedrock config; re-planned its margo "
                 f"section (rpc xstreams {service.threads.rpc}, progress "
                 f"{service.threads.progress.value}, io xstreams {service.io_xstreams})")
    return service, notes


def _read_doc(p: Path) -> tuple[YamlDocument, bool]:
    try:
        text = read_input_text(p)
    except InputError as err:
        if err.problems[0].message == "file not found":
            raise fail("file not found", file=str(p), hint="give a service description "
                       "(.yaml) or a Bedrock config (.json)") from None
        raise
    is_json = p.suffix == ".json" or text.lstrip().startswith("{")
    if is_json:
        from bedrock_deploy.bedrock_validator import load_json_located

        doc = load_json_located(text, str(p))
    else:
        doc = parse_yaml(text, str(p))
    if not isinstance(doc.data, dict):
        raise fail("a service description is a mapping" if not is_json else
                   "a Bedrock config is a JSON object", location=doc.locate(()), file=str(p),
                   hint="start with 'name: my-service'" if not is_json else "start with '{'")
    return doc, is_json


def _with_bedrock_config(doc: YamlDocument, base: Path
                         ) -> tuple[dict[str, Any], list[str], str | None, dict[str, Any]]:
    """A service naming ``bedrock_config``: its providers, with this service's threads.

    ``bedrock_config`` is the path of a Bedrock JSON config (relative to ``base``) or, for a
    service given as Python data, the config itself (a dict); returns the service's data, the
    notes, the JSON file read (None for a dict) and the Bedrock config itself."""
    ref = doc.data["bedrock_config"]
    where = doc.locate(("bedrock_config",))
    if not isinstance(ref, str | dict):
        raise fail("bedrock_config is the path of a Bedrock JSON config",
                   path=("bedrock_config",), location=where,
                   hint="write e.g. 'bedrock_config: mofka-config.json' (relative to this file)")
    if "components" in doc.data:
        raise fail("give either 'components' or 'bedrock_config', not both",
                   path=("components",), location=doc.locate(("components",)),
                   hint="the providers come from the Bedrock config")
    json_file: str | None = None
    if isinstance(ref, dict):
        jdoc = YamlDocument(file=f"{doc.file}.bedrock_config", data=ref, locations={})
    else:
        jp = Path(ref) if Path(ref).is_absolute() else base / ref
        if not is_file(jp):
            raise fail(f"Bedrock config {str(jp)!r} not found", path=("bedrock_config",),
                       location=where, hint="give a path relative to this file")
        jdoc, is_json = _read_doc(jp)
        if not is_json:
            raise fail("bedrock_config must name a JSON file", path=("bedrock_config",),
                       location=where, hint="name a Bedrock config written in JSON (.json)")
        json_file = str(jp)
    derived, notes = _from_bedrock_json(jdoc.data, jdoc.file, jdoc.locate, "derived")
    data = dict(doc.data)
    if json_file is None:
        data["bedrock_config"] = None  # the providers are in 'components' now
    data["components"] = [c.model_dump(mode="json", exclude_none=True)
                          for c in derived.components]
    data["extra_libraries"] = list(derived.extra_libraries) + list(
        data.get("extra_libraries", []) or [])
    threads = data.get("threads", {})
    if isinstance(threads, dict):
        data["threads"] = {**derived.threads.model_dump(mode="json", exclude_unset=True),
                           **threads}
    return data, notes, json_file, jdoc.data


def load_service(path: str | Path) -> LoadedService:
    """Load a YAML service description, or an existing Bedrock JSON config (``.json``)."""
    p = Path(path)
    doc, is_json = _read_doc(p)
    return _from_document(doc, is_json=is_json, base=p.parent)


def _from_document(doc: YamlDocument, *, is_json: bool, base: Path, name: str | None = None,
                   in_memory: bool = False) -> LoadedService:
    """A parsed service document (a file's, or Python data) -> a validated service."""
    if is_json:
        service, notes = _from_bedrock_json(doc.data, doc.file, doc.locate, name)
        return LoadedService(service=service, file=doc.file, locations=doc.locations,
                             kind="bedrock-json", notes=notes, in_memory=in_memory,
                             source_config=doc.data, source_config_file=doc.file)
    data, notes, extra, from_config = doc.data, [], [], False
    source: dict[str, Any] | None = None
    source_file: str | None = None
    if "bedrock_config" in doc.data:
        data, notes, json_file, source = _with_bedrock_config(doc, base)
        extra, from_config = ([json_file] if json_file else []), True
        source_file = json_file or f"{doc.file}.bedrock_config"
    if name is not None:
        data = {**data, "name": name}

    def where(path: KeyPath) -> SourceLocation:
        if from_config and path[:1] == ("components",):
            return doc.locate(("bedrock_config",))
        return doc.locate(path)

    service = validate_model(ServiceDescription, data, where)
    problems = [Problem(x.message, path=x.path, location=where(x.path), hint=x.hint)
                for x in check_service(service)]
    if problems:
        raise InputError(problems)
    return LoadedService(service=service, file=doc.file, locations=doc.locations, notes=notes,
                         extra_files=extra, in_memory=in_memory, source_config=source,
                         source_config_file=source_file)


BEDROCK_CONFIG_KEYS = frozenset({"providers", "libraries", "bedrock"})
"""Top-level keys that make a mapping a Bedrock config rather than a service description (a
``mochi.bedrock.spec.ProcSpec(...).to_dict()`` always has all three)."""


def is_bedrock_config(data: dict[str, Any]) -> bool:
    """Is this mapping a Bedrock config (``providers``, ``libraries``, ``bedrock``) rather than a
    service description (``name``, ``components`` or ``bedrock_config``)?"""
    if {"components", "bedrock_config"} & data.keys():
        return False
    return bool(BEDROCK_CONFIG_KEYS & data.keys())


def load_service_data(data: dict[str, Any], *, label: str = "<service>",
                      base: Path | None = None, name: str | None = None) -> LoadedService:
    """Validate a service description or a Bedrock config given as Python data.

    ``label`` names the data in error messages (there are no lines to point at: problems carry
    the label and the key path); ``base`` is where a relative ``bedrock_config`` is looked up
    (default: the current directory); ``name`` sets the service's name (a Bedrock config has
    none: it is called ``service`` unless named)."""
    if not isinstance(data, dict):
        raise fail(f"a service is a mapping, not {type(data).__name__}", file=label,
                   hint="give a dict such as {'name': 'kv', 'components': [...]}")
    doc = YamlDocument(file=label, data=copy.deepcopy(data), locations={})
    bedrock = is_bedrock_config(doc.data)
    try:
        return _from_document(doc, is_json=bedrock, base=base or Path.cwd(),
                              name=name or (None if not bedrock else "service"),
                              in_memory=True)
    except InputError as err:  # no lines to point at: name the data and the key path
        raise InputError([replace(p, location=None, file=p.location.file)
                          if p.location is not None and p.location.file.startswith(label)
                          else p for p in err.problems]) from None


def service_from_dict(data: dict[str, Any], file: str = "<service>") -> ServiceDescription:
    """Validate plain data (tests, Python callers); errors carry key paths."""
    service = validate_model(ServiceDescription, data, lambda _p: SourceLocation(file, 1, 1))
    problems = check_service(service)
    if problems:
        raise InputError(problems)
    return service
