"""Check a Spack environment (``spack.yaml``) without Spack.

What Spack would reject on the cluster, caught on a laptop: unknown top-level keys, spec syntax,
unknown packages, variants that belong to another package, values a variant does not allow,
variants that do not exist in the version we target. The facts come from the data table
``share/spack/packages.yaml`` (read from the real ``package.py`` files; see its header).
:func:`check_against_plan` adds what only the deployment plan knows: the libfabric fabrics the
chosen transport needs (and no others), ``argobots+affinity`` when the layout pins xstreams, the
Mercury plugin of the transport.

The spec grammar we check is the subset bedrock-deploy emits and site profiles use::

    spec  := node ('^' node)*
    node  := [name] ('@' versions | ('+'|'~'|'++'|'~~') variant | key ('='|'=='|':=') values
                     | '%' compiler['@' versions])*
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ruamel.yaml import YAML

from bedrock_deploy.diagnostics import InputError, KeyPath, Problem, SourceLocation
from bedrock_deploy.resources import share_path
from bedrock_deploy.yaml_source import YamlDocument, locate, parse_yaml

if TYPE_CHECKING:
    from bedrock_deploy.plan import DeploymentPlan, NodeLayout, TransportChoice
    from bedrock_deploy.site_profile import SiteProfile

Locator = Callable[[KeyPath], SourceLocation]

# ---------------------------------------------------------------------------------------------
# Spec tokenizer and parser


class SpecSyntaxError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.message = message
        self.column = column  # 0-based offset into the spec string


_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_VERSIONS = r"=?[A-Za-z0-9_.:,\-]+"
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[A-Za-z0-9_.,:+\-/*]+)"
_TOKEN = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<dep>\^)
  | (?P<version>@{_VERSIONS})
  | (?P<compiler>%%?{_NAME}(?:@{_VERSIONS})?)
  | (?P<boolvar>(?:\+\+|~~|\+|~){_NAME})
  | (?P<keyval>{_NAME}(?:==|:=|=){_VALUE})
  | (?P<name>{_NAME})
    """,
    re.VERBOSE,
)


@dataclass
class SpecNode:
    name: str | None = None
    version: str | None = None
    variants: dict[str, bool | tuple[str, ...]] = field(default_factory=dict)
    compiler: str | None = None


@dataclass
class ParsedSpec:
    text: str
    nodes: list[SpecNode]  # nodes[0] is the root, the others are '^' dependencies

    @property
    def root(self) -> SpecNode:
        return self.nodes[0]


def parse_spec(text: str) -> ParsedSpec:
    """Parse one spec string; raises :class:`SpecSyntaxError` at the first bad character."""
    nodes = [SpecNode()]
    pos = 0
    if not text.strip():
        raise SpecSyntaxError("empty spec", 0)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SpecSyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind, tok = m.lastgroup, m.group()
        node = nodes[-1]
        if kind == "dep":
            nodes.append(SpecNode())
        elif kind == "version":
            if node.version is not None:
                raise SpecSyntaxError("a second version for the same package", pos)
            node.version = tok[1:]
        elif kind == "compiler":
            node.compiler = tok.lstrip("%")
        elif kind == "boolvar":
            flag = tok.lstrip("+~")
            _set_variant(node, flag, tok[0] == "+", pos)
        elif kind == "keyval":
            key, _, raw = re.split(r"(==|:=|=)", tok, maxsplit=1)
            raw = raw.strip("'\"")
            values = tuple(v for v in raw.split(",") if v)
            if not values:
                raise SpecSyntaxError(f"variant {key!r} has no value", pos)
            _set_variant(node, key, values, pos)
        elif kind == "name":
            if node.name is not None or node.version or node.variants:
                raise SpecSyntaxError(
                    f"unexpected name {tok!r} (one package per spec; use '^' for a dependency)",
                    pos)
            node.name = tok
        pos = m.end()
    for i, node in enumerate(nodes):
        if i > 0 and node.name is None:
            raise SpecSyntaxError("'^' must be followed by a package name", len(text))
    return ParsedSpec(text, nodes)


def _set_variant(node: SpecNode, name: str, value: bool | tuple[str, ...], pos: int) -> None:
    if name in node.variants:
        raise SpecSyntaxError(f"variant {name!r} is given twice", pos)
    node.variants[name] = value


# ---------------------------------------------------------------------------------------------
# Versions and ranges (the subset of Spack's version syntax we need for 'when' clauses)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts = re.split(r"[.\-_]", version.lstrip("="))
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def version_satisfies(version: str, constraint: str) -> bool:
    """``version_satisfies("0.9.1", "@0.8.4:")``; ranges 'a:b', 'a:', ':b', exact or prefix."""
    v = _version_key(version)
    if v and v[0][0] == 1:  # branch versions (develop, main): newer than every release
        return not constraint.lstrip("@").split(":")[-1] if ":" in constraint else False
    for alt in constraint.lstrip("@").split(","):
        if ":" in alt:
            lo, hi = alt.split(":", 1)
            if lo and v < _version_key(lo):
                continue
            if hi:
                hk = _version_key(hi)
                if v[: len(hk)] > hk:
                    continue
            return True
        k = _version_key(alt)
        if v[: len(k)] == k:
            return True
    return False


def _spec_version(version: str | None, latest: str | None) -> str | None:
    """The version a spec resolves to for our checks: its lowest pinned one, else the latest."""
    if version:
        first = version.lstrip("=").split(",")[0]
        lo = first.split(":")[0]
        return lo or latest
    return latest


# ---------------------------------------------------------------------------------------------
# The data table


@dataclass(frozen=True)
class VariantInfo:
    name: str
    default: Any
    values: tuple[str, ...] | None  # None: boolean variant
    multi: bool = False
    when: str | None = None


@dataclass(frozen=True)
class PackageInfo:
    name: str
    repo: str
    latest: str | None
    variants: dict[str, VariantInfo]
    unchecked: bool = False
    needs_repos: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpackKnowledge:
    """``share/spack/packages.yaml``, loaded."""

    packages: dict[str, PackageInfo]
    raw: dict[str, Any]

    @property
    def virtuals(self) -> dict[str, list[str]]:
        return dict(self.raw.get("virtuals", {}))

    def section(self, name: str) -> Any:
        return self.raw[name]

    def packages_with_variant(self, variant: str) -> list[str]:
        return sorted(n for n, p in self.packages.items() if variant in p.variants)


def _load_knowledge(path: Path) -> SpackKnowledge:
    """packages.yaml, plus each component's package from the component catalogue."""
    from bedrock_deploy.components import catalogue

    raw = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    entries = dict(raw["packages"])
    for c in catalogue().components.values():
        entries[c.package] = {"repo": c.repo, "latest": c.latest, "variants": c.spack_variants,
                              "needs_repos": list(c.needs_repos)}
    packages: dict[str, PackageInfo] = {}
    for name, entry in entries.items():
        variants = {}
        for vname, v in (entry.get("variants") or {}).items():
            values = v.get("values")
            variants[vname] = VariantInfo(
                name=vname, default=v.get("default"),
                values=tuple(str(x) for x in values) if values is not None else None,
                multi=bool(v.get("multi", False)), when=v.get("when"))
        packages[name] = PackageInfo(
            name=name, repo=entry["repo"],
            latest=str(entry["latest"]) if entry.get("latest") is not None else None,
            variants=variants, unchecked=bool(entry.get("unchecked", False)),
            needs_repos=tuple(entry.get("needs_repos", ())))
    return SpackKnowledge(packages=packages, raw=raw)


@lru_cache(maxsize=4)
def knowledge(path: str | None = None) -> SpackKnowledge:
    return _load_knowledge(Path(path) if path else share_path("spack", "packages.yaml"))


# ---------------------------------------------------------------------------------------------
# Checks


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def check_spec(text: Any, kb: SpackKnowledge, *, path: KeyPath, where: Locator,
               package: str | None = None, unknown_ok: bool = False) -> list[Problem]:
    """Problems with one spec string (``package``: the packages.yaml entry it constrains).

    ``unknown_ok``: a package we have no table entry for is not an error (site requirements and
    externals may name any Spack package; only its syntax is checked)."""
    loc = where(path)
    if not isinstance(text, str):
        return [Problem(f"a spec must be a string, not {type(text).__name__}", path, loc,
                        hint="quote it, e.g. \"mercury~checksum\"")]
    try:
        spec = parse_spec(text)
    except SpecSyntaxError as err:
        return [Problem(f"invalid spec {text!r}: {err.message} at column {err.column + 1}",
                        path, loc, hint="see Spack's spec syntax: name@version+variant "
                        "~variant key=value ^dependency")]
    problems: list[Problem] = []
    for i, node in enumerate(spec.nodes):
        name = node.name or (package if i == 0 else None)
        if name is None:
            problems.append(Problem(f"spec {text!r} names no package", path, loc,
                                    hint="start the spec with a package name"))
            continue
        if name in kb.virtuals and not node.variants:
            continue
        info = kb.packages.get(name)
        if info is None and unknown_ok:
            continue
        if info is None:
            close = _suggest(name, kb.packages)
            problems.append(Problem(
                f"unknown package {name!r} in spec {text!r}", path, loc,
                hint=(f"did you mean {close!r}? " if close else "")
                + "bedrock-deploy knows the packages in share/spack/packages.yaml; "
                "add it there (with its variants) if Spack really has it"))
            continue
        if info.unchecked:
            continue
        version = _spec_version(node.version, info.latest)
        for vname, value in node.variants.items():
            problems += _check_variant(text, info, vname, value, version, kb, path, loc)
    return problems


def _check_variant(text: str, info: PackageInfo, vname: str, value: bool | tuple[str, ...],
                   version: str | None, kb: SpackKnowledge, path: KeyPath,
                   loc: SourceLocation) -> list[Problem]:
    var = info.variants.get(vname)
    if var is None:
        owners = [p for p in kb.packages_with_variant(vname) if p != info.name]
        close = _suggest(vname, info.variants)
        if owners:
            hint = (f"'{vname}' is a variant of {', '.join(owners)}, not of {info.name}; "
                    f"write it as its own spec or as '^{owners[0]} ...'")
        elif close:
            hint = f"did you mean {close!r}?"
        else:
            hint = f"{info.name} has: {', '.join(sorted(info.variants)) or 'no variants'}"
        return [Problem(f"no variant {vname!r} for package {info.name} (in {text!r})", path, loc,
                        hint=hint)]
    problems: list[Problem] = []
    if var.when and version and not version_satisfies(version, var.when):
        problems.append(Problem(
            f"variant {vname!r} of {info.name} exists only {var.when}, not in {version}"
            f" (in {text!r})", path, loc,
            hint=f"pin a version in {var.when} or drop the variant"))
    if var.values is None:
        if not isinstance(value, bool):
            if value in (("true",), ("True",)) or value in (("false",), ("False",)):
                return problems
            problems.append(Problem(
                f"variant {vname!r} of {info.name} is boolean; {vname}={','.join(value)} is not "
                f"allowed (in {text!r})", path, loc, hint=f"write +{vname} or ~{vname}"))
        return problems
    if isinstance(value, bool):
        problems.append(Problem(
            f"variant {vname!r} of {info.name} takes a value, not {'+' if value else '~'}{vname}"
            f" (in {text!r})", path, loc,
            hint=f"write {vname}=<value>, one of: {', '.join(var.values)}"))
        return problems
    bad = [v for v in value if v not in var.values]
    if bad:
        problems.append(Problem(
            f"invalid value{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} for variant "
            f"{vname!r} of {info.name} (in {text!r})", path, loc,
            hint=f"allowed: {', '.join(var.values)}"))
    if len(value) > 1 and not var.multi:
        problems.append(Problem(f"variant {vname!r} of {info.name} takes one value (in {text!r})",
                                path, loc, hint=f"pick one of: {', '.join(value)}"))
    return problems


def check_manifest(doc: YamlDocument, kb: SpackKnowledge | None = None) -> list[Problem]:
    """Structural problems of a Spack environment file (no plan needed)."""
    kb = kb or knowledge()
    data = doc.data

    def where(p: KeyPath) -> SourceLocation:
        return locate(doc.locations, p, doc.file)

    if not isinstance(data, dict) or "spack" not in data:
        return [Problem("a Spack environment file has one top-level key, 'spack'", (),
                        where(()), hint="put everything under 'spack:'")]
    problems = [Problem(f"unknown top-level key {k!r}", (k,), where((k,)),
                        hint="Spack rejects anything but 'spack:' at the top level")
                for k in data if k != "spack"]
    env = data["spack"]
    if not isinstance(env, dict):
        return [*problems, Problem("'spack' must be a mapping", ("spack",), where(("spack",)))]
    allowed = kb.section("env_keys")
    for key in env:
        if key not in allowed:
            close = _suggest(key, allowed)
            problems.append(Problem(
                f"unknown key {key!r} (Spack fails with 'Additional properties are not allowed')",
                ("spack", key), where(("spack", key)),
                hint=f"did you mean {close!r}?" if close else
                "put provenance in a YAML comment; allowed keys: " + ", ".join(allowed)))
    specs = env.get("specs", [])
    if not isinstance(specs, list):
        problems.append(Problem("'specs' must be a list", ("spack", "specs"),
                                where(("spack", "specs"))))
        specs = []
    for i, s in enumerate(specs):
        problems += check_spec(s, kb, path=("spack", "specs", i), where=where)
    conc = env.get("concretizer", {})
    if isinstance(conc, dict) and "unify" in conc and conc["unify"] not in (
            True, False, "when_possible"):
        problems.append(Problem(f"concretizer.unify must be true, false or when_possible, not "
                                f"{conc['unify']!r}", ("spack", "concretizer", "unify"),
                                where(("spack", "concretizer", "unify"))))
    problems += _check_packages(env.get("packages", {}), kb, where)
    problems += _check_repos(env.get("repos", {}), where)
    return problems


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_packages(packages: Any, kb: SpackKnowledge, where: Locator) -> list[Problem]:
    base: KeyPath = ("spack", "packages")
    if not isinstance(packages, dict):
        return [Problem("'packages' must be a mapping", base, where(base))]
    problems: list[Problem] = []
    keys = kb.section("package_keys")
    compiler_packages = {c["package"] for c in kb.section("compilers").values()}
    for name, entry in packages.items():
        p = (*base, name)
        if not isinstance(entry, dict):
            problems.append(Problem(f"packages.{name} must be a mapping", p, where(p)))
            continue
        for key in entry:
            if key not in keys:
                problems.append(Problem(f"unknown key {key!r} in packages.{name}", (*p, key),
                                        where((*p, key)), hint="allowed: " + ", ".join(keys)))
        is_virtual = name in kb.virtuals
        own = None if name == "all" or is_virtual else name
        for key in ("require", "prefer", "conflict"):
            if key not in entry:
                continue
            for i, item in enumerate(_as_list(entry[key])):
                ip = (*p, key, i) if isinstance(entry[key], list) else (*p, key)
                texts = [item] if not isinstance(item, dict) else _as_list(
                    item.get("one_of", item.get("any_of", item.get("spec", []))))
                for t in texts:
                    problems += check_spec(t, kb, path=ip, where=where, package=own,
                                           unknown_ok=True)
        for i, ext in enumerate(entry.get("externals", []) or []):
            ep = (*p, "externals", i)
            if not isinstance(ext, dict) or "spec" not in ext:
                problems.append(Problem("an external needs a 'spec'", ep, where(ep),
                                        hint="e.g. {spec: libfabric@1.22.0, prefix: /usr}"))
                continue
            problems += check_spec(ext["spec"], kb, path=(*ep, "spec"), where=where,
                                   unknown_ok=True)
            try:
                ename = parse_spec(str(ext["spec"])).root.name
            except SpecSyntaxError:
                continue
            if ename != name:
                problems.append(Problem(
                    f"external {ext['spec']!r} is listed under packages.{name}",
                    (*ep, "spec"), where((*ep, "spec")),
                    hint=f"list it under packages.{ename}"))
            if "prefix" not in ext and "modules" not in ext:
                problems.append(Problem(f"external {ext['spec']!r} has neither prefix nor modules",
                                        ep, where(ep), hint="give its install prefix or modules"))
            if name in compiler_packages:
                problems += _compiler_external_problems(ext, ep, where)
        if "buildable" in entry and not isinstance(entry["buildable"], bool):
            problems.append(Problem("buildable must be true or false", (*p, "buildable"),
                                    where((*p, "buildable"))))
    return problems


def _compiler_external_problems(ext: dict[str, Any], ep: KeyPath,
                                where: Locator) -> list[Problem]:
    """Spack >= 1.0 reads a compiler's executables from ``extra_attributes.compilers``; an
    external compiler without them gives Spack no C compiler at build time."""
    attrs = ext.get("extra_attributes")
    paths = attrs.get("compilers") if isinstance(attrs, dict) else None
    hint = ("add extra_attributes: {compilers: {c: /path/bin/gcc, cxx: /path/bin/g++, "
            "fortran: /path/bin/gfortran}} (in a site profile: the compiler's prefix or paths)")
    if not isinstance(paths, dict):
        return [Problem(f"compiler external {ext['spec']!r} has no compiler paths "
                        "(extra_attributes.compilers)", ep, where(ep), hint=hint)]
    problems = []
    for lang in ("c", "cxx"):
        value = paths.get(lang)
        if not isinstance(value, str) or not value.startswith("/"):
            p = (*ep, "extra_attributes", "compilers")
            problems.append(Problem(
                f"compiler external {ext['spec']!r} gives no absolute {lang} compiler path",
                p, where(p), hint=hint))
    return problems


def _check_repos(repos: Any, where: Locator) -> list[Problem]:
    base: KeyPath = ("spack", "repos")
    if isinstance(repos, list):
        return [Problem("the list form of 'repos' is the pre-1.0 syntax", base, where(base),
                        hint="use a mapping: repos: {mochi: {git: ...}, builtin: {...}}")]
    if not isinstance(repos, dict):
        return [Problem("'repos' must be a mapping", base, where(base))]
    problems: list[Problem] = []
    for name, entry in repos.items():
        p = (*base, name)
        if isinstance(entry, str):
            continue
        if not isinstance(entry, dict) or "git" not in entry:
            problems.append(Problem(f"repo {name!r} must be a path or a mapping with 'git'", p,
                                    where(p)))
            continue
        for key in entry:
            if key not in ("git", "branch", "commit", "tag", "destination", "paths"):
                problems.append(Problem(f"unknown key {key!r} in repos.{name}", (*p, key),
                                        where((*p, key)),
                                        hint="allowed: git, branch, commit, tag, destination"))
        pins = [k for k in ("branch", "commit", "tag") if k in entry]
        if len(pins) > 1:
            problems.append(Problem(f"repos.{name} pins both {pins[0]} and {pins[1]}", p, where(p),
                                    hint="give one of branch, commit or tag"))
    names = list(repos)
    if "mochi" in names and "builtin" in names and names.index("mochi") > names.index("builtin"):
        problems.append(Problem("the mochi repo is listed after builtin", (*base, "mochi"),
                                where((*base, "mochi")),
                                hint="list mochi first, or builtin's older mochi-margo, mercury "
                                "and argobots win"))
    return problems


# ---------------------------------------------------------------------------------------------
# Plan-aware checks


@dataclass
class EnvSpecs:
    """The root specs of an environment, by package name (all nodes merged)."""

    by_name: dict[str, SpecNode]

    @classmethod
    def of(cls, env: dict[str, Any]) -> EnvSpecs:
        by_name: dict[str, SpecNode] = {}
        for s in env.get("specs", []) or []:
            try:
                spec = parse_spec(str(s))
            except SpecSyntaxError:
                continue
            for node in spec.nodes:
                if node.name:
                    merged = by_name.setdefault(node.name, SpecNode(node.name))
                    merged.variants.update(node.variants)
        for name, entry in (env.get("packages", {}) or {}).items():
            if not isinstance(entry, dict) or name in ("all",):
                continue
            for item in _as_list(entry.get("require", [])):
                if not isinstance(item, str):
                    continue
                try:
                    node = parse_spec(item).root
                except SpecSyntaxError:
                    continue
                if node.name in (None, name):
                    by_name.setdefault(name, SpecNode(name)).variants.update(node.variants)
        return cls(by_name)

    def variant(self, package: str, name: str) -> bool | tuple[str, ...] | None:
        node = self.by_name.get(package)
        return node.variants.get(name) if node else None


def mercury_plugin(protocol: str, kb: SpackKnowledge) -> tuple[str, str | None]:
    """``"ofi+tcp://"`` -> ("ofi", "tcp"); ``"cxi://"`` -> ("ofi", "cxi"); ``"na+sm://"`` ->
    ("sm", None); ``"ucx+all://"`` -> ("ucx", "all")."""
    head = protocol.split("://", 1)[0]
    plugin, _, rest = head.partition("+")
    provider = rest.split(";", 1)[0] or None
    if not provider:
        if plugin in kb.section("ofi_shorthands"):
            return "ofi", plugin
        return plugin, None
    if plugin == "na":
        return provider, None
    return plugin, provider


class PlanLike(Protocol):
    """What the plan-aware check reads: a DeploymentPlan, or the same rebuilt from a manifest."""

    @property
    def transport(self) -> TransportChoice: ...
    @property
    def layout(self) -> NodeLayout: ...
    @property
    def site(self) -> SiteProfile | None: ...


def check_against_plan(doc: YamlDocument, plan: PlanLike,
                       kb: SpackKnowledge | None = None) -> list[Problem]:
    """What the plan requires of the environment: transport plugin and fabrics, affinity, MPI."""
    kb = kb or knowledge()
    env = doc.data.get("spack", {}) if isinstance(doc.data, dict) else {}

    def where(p: KeyPath) -> SourceLocation:
        return locate(doc.locations, p, doc.file)

    specs = EnvSpecs.of(env)
    problems: list[Problem] = []
    root: KeyPath = ("spack", "specs")
    if plan.layout.pins_threads and specs.variant("argobots", "affinity") is not True:
        problems.append(Problem(
            "the layout pins xstreams to CPUs but argobots is not built +affinity", root,
            where(root), hint="add 'argobots+affinity': without it Argobots silently ignores "
            "every cpubind/affinity (mochi-stack.md rule 7)"))
    t = plan.transport
    plugin, provider = mercury_plugin(t.protocol, kb)
    plugins = kb.section("mercury_plugins")
    if plugin not in plugins:
        problems.append(Problem(f"transport {t.name!r} uses Mercury plugin {plugin!r}, which "
                                "bedrock-deploy cannot build", root, where(root),
                                hint="use one of: " + ", ".join(plugins)))
        return problems
    for req in [*kb.section("mercury_always"), *plugins[plugin]["mercury"]]:
        want = req[0] == "+"
        if specs.variant("mercury", req[1:]) is not want:
            problems.append(Problem(
                f"transport {t.name!r} ({t.protocol}) needs mercury{req}", root, where(root),
                hint=f"add {req} to the mercury spec"))
    lf_entry = (env.get("packages", {}) or {}).get("libfabric", {}) or {}
    root_fabrics = _fabrics_of(EnvSpecs.of({"specs": env.get("specs", [])}))
    site_fabrics = _fabrics_of(EnvSpecs.of({"packages": {"libfabric": lf_entry}}))
    fabrics = root_fabrics | site_fabrics
    vendor = bool(lf_entry.get("externals")) and lf_entry.get("buildable") is False
    lf_path: KeyPath = ("spack", "packages", "libfabric")
    providers = kb.section("libfabric_providers")
    if plugins[plugin]["libfabric"]:
        prov = provider or t.provider
        table = providers.get(prov or "", None)
        if vendor:
            if fabrics:
                problems.append(Problem(
                    "libfabric is a vendor external (buildable: false) and fabrics= is also "
                    "requested: Spack cannot satisfy both", lf_path, where(lf_path),
                    hint="drop the fabrics= request; the vendor build already has its fabrics"))
        elif table is None:
            problems.append(Problem(f"unknown libfabric provider {prov!r} for transport {t.name!r}",
                                    root, where(root), hint="use one of: " + ", ".join(providers)))
        else:
            missing = sorted(set(table["needs"]) - fabrics)
            if missing:
                problems.append(Problem(
                    f"transport {t.name!r} ({prov}) needs libfabric fabrics={','.join(missing)}",
                    root, where(root),
                    hint=f"request libfabric fabrics={','.join(table['needs'])}"))
            extra = sorted(root_fabrics - set(table["allowed"]))
            if extra:
                problems.append(Problem(
                    f"libfabric fabric{'s' if len(extra) > 1 else ''} {','.join(extra)} "
                    f"not needed by transport {t.name!r} ({prov})", root, where(root),
                    hint=f"{prov} uses only {','.join(table['allowed'])}; fix the transport's "
                    "'fabrics' in the site profile"))
            problems += _site_fabric_problems(site_fabrics, set(table["allowed"]), plan, kb,
                                              where(lf_path), lf_path)
    else:
        if root_fabrics:
            problems.append(Problem(
                f"transport {t.name!r} ({t.protocol}) does not use libfabric, but fabrics="
                f"{','.join(sorted(root_fabrics))} is requested", root, where(root),
                hint="drop the libfabric spec"))
        problems += _site_fabric_problems(site_fabrics, set(), plan, kb, where(lf_path), lf_path)
    return problems


def _site_fabric_problems(site_fabrics: set[str], allowed: set[str], plan: PlanLike,
                          kb: SpackKnowledge, at: SourceLocation, path: KeyPath) -> list[Problem]:
    """A site may build libfabric for all its transports (fallbacks included), not more."""
    plugins = kb.section("mercury_plugins")
    providers = kb.section("libfabric_providers")
    site_allowed = set(allowed)
    for st in plan.site.transports if plan.site is not None else []:
        sp, sprov = mercury_plugin(st.protocol, kb)
        entry = providers.get(sprov or st.provider or "")
        if plugins.get(sp, {}).get("libfabric") and entry:
            site_allowed |= set(entry["allowed"])
    extra = sorted(site_fabrics - site_allowed)
    if not extra:
        return []
    return [Problem(f"libfabric fabric{'s' if len(extra) > 1 else ''} {','.join(extra)} "
                    "not needed by any transport of the site", path, at,
                    hint="remove it from spack.require.libfabric in the site profile")]


def _fabrics_of(specs: EnvSpecs) -> set[str]:
    value = specs.variant("libfabric", "fabrics")
    return set(value) if isinstance(value, tuple) else set()


def verify_generated(text: str, plan: DeploymentPlan, file: str = "spack.yaml") -> None:
    """Raise :class:`InputError` if generated ``spack.yaml`` text fails our own checks."""
    doc = parse_yaml(text, file)
    kb = knowledge()
    problems = check_manifest(doc, kb) + check_against_plan(doc, plan, kb)
    if problems:
        raise InputError(problems)
