"""The deployment's Spack environment (``DIR/spack.yaml``), rendered from the plan.

Specs name exactly the components the Bedrock configs use (provider types, yokan backends,
abt-io io_uring, flock MPI bootstrap, margo plumber) plus the network stack the chosen transport
needs; site externals, compilers (Spack >= 1.0 form: externals of the compiler package) and
requirements go under ``packages:``; the mochi repo is listed before builtin. Provenance (site,
Spack and repo pins, why each variant is there) goes into a YAML comment header, because Spack
rejects unknown keys. The text is built as data and dumped with ruamel.yaml, then checked by
:mod:`bedrock_deploy.spack_check`; if our own output fails, generation fails.

Which package and variants each provider type needs comes from the component catalogue
(:mod:`bedrock_deploy.components`); the rest of the Spack knowledge from
``share/spack/packages.yaml``.
Other facts: mochi-hpc-experiments/platform-configurations (README.md, per-site spack.yaml),
mochi-hpc/mochi-spack-packages, and Spack v1.1.0 (compilers are externals with
extra_attributes.compilers; tests/test_spack_real.py concretizes the goldens).

``py-bedrock-deploy`` (our Spack package, ``spack-repo/``) is *not* in the environment by
default: on a cluster the engine is Spack's ``bedrock`` and the generator runs from pip on the
login node. Pass ``generator_source`` (a bedrock-deploy source tree) to add it; Spack then builds
it from that tree (a ``develop:`` entry), with our repo listed in ``repos:``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bedrock_deploy.components import catalogue, config_uses_mpi
from bedrock_deploy.diagnostics import InputError, Problem
from bedrock_deploy.plan import CONFIG_DIR, DeploymentPlan, config_name
from bedrock_deploy.resources import spack_repo_dir
from bedrock_deploy.spack_check import (
    SpackKnowledge,
    SpecSyntaxError,
    knowledge,
    mercury_plugin,
    parse_spec,
    verify_generated,
)

MOCHI_REPO = "mochi"
BUILTIN_REPO = "builtin"
OUR_REPO = "bedrock_deploy"
OUR_PACKAGE = "py-bedrock-deploy"


def next_steps(env_dir: str | Path = "DIR") -> list[str]:
    """What an admin runs after ``generate`` (printed by ``spack check``; for the README too)."""
    return [f"spack env activate {env_dir} && spack concretize && spack install",
            f"bedrock-deploy spack check {env_dir} --concretize   (checks with Spack itself)"]


@dataclass
class SpackEnvironment:
    """What goes into spack.yaml, before rendering (tests and the manifest read it too)."""

    specs: dict[str, list[str]] = field(default_factory=dict)  # package -> variant tokens
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    repos: dict[str, Any] = field(default_factory=dict)
    develop: dict[str, Any] = field(default_factory=dict)
    mirrors: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def add(self, package: str, *variants: str, why: str | None = None) -> None:
        tokens = self.specs.setdefault(package, [])
        for v in variants:
            if v not in tokens:
                tokens.append(v)
        if why:
            self.reasons.append(f"{spec_string(package, variants)}: {why}")

    def spec_strings(self) -> list[str]:
        return [spec_string(name, tokens) for name, tokens in self.specs.items()]


def spec_string(name: str, tokens: Iterable[str]) -> str:
    """``("libfabric", ["fabrics=tcp,rxm"])`` -> ``"libfabric fabrics=tcp,rxm"``."""
    tokens = list(tokens)
    bools = "".join(t for t in tokens if t[0] in "+~")
    keyvals = " ".join(t for t in tokens if t[0] not in "+~")
    return f"{name}{bools}" + (f" {keyvals}" if keyvals else "")


# ---------------------------------------------------------------------------------------------
# What the Bedrock configs use


def _config_problem(rank: int, path: tuple[str | int, ...], message: str, hint: str) -> Problem:
    return Problem(message, path=path, hint=hint, file=f"{CONFIG_DIR}/{config_name(rank)}")


def collect_components(plan: DeploymentPlan, env: SpackEnvironment, kb: SpackKnowledge) -> None:
    """Add the Mochi components the configs use, with the variants their settings need (both
    from the component catalogue, share/components.json)."""
    cat = catalogue()
    used: dict[str, list[str]] = {}  # package -> variant tokens, in catalogue order
    why: dict[str, list[str]] = {}
    mpi_reasons: list[str] = []
    plumber = False
    problems: list[Problem] = []

    for rank, cfg in enumerate(plan.configs):
        mpi_reasons += [r for r in config_uses_mpi(cfg) if r not in mpi_reasons]
        if isinstance(cfg.get("margo"), dict) and "plumber" in cfg["margo"]:
            plumber = True
        for lib in cfg.get("libraries", []) or []:
            for ctype in cat.by_library(str(lib)):
                used.setdefault(ctype.package, [])
        for i, prov in enumerate(cfg.get("providers", []) or []):
            if not isinstance(prov, dict):
                continue  # the validator reports it
            ctype = cat.get(prov.get("type"))
            if ctype is None:
                problems.append(_config_problem(
                    rank, ("providers", i, "type"),
                    f"no Spack package is known for Bedrock provider type {prov.get('type')!r}",
                    "known types: " + ", ".join(cat.components)
                    + "; add the component to share/components.json"))
                continue
            tokens = used.setdefault(ctype.package, [])
            pcfg = prov.get("config", {}) or {}
            pcfg = pcfg if isinstance(pcfg, dict) else {}  # the validator reports the type
            for choice, value in ctype.unknown_choices(pcfg):
                problems.append(_config_problem(
                    rank, ("providers", i, "config", *choice.key),
                    f"unknown {ctype.name} {choice.path} {value!r}",
                    "use one of: " + ", ".join(choice.values)))
            for token, reason in ctype.variants_for(pcfg):
                if token not in tokens:
                    tokens.append(token)
                    why.setdefault(ctype.package, []).append(reason)
    if problems:
        raise InputError(problems)

    uses_mpi = bool(mpi_reasons)
    env.add("mochi-bedrock", "+mpi" if uses_mpi else "~mpi",
            why="configs use MPI (flock bootstrap or __if__ on $MPI_COMM_WORLD)" if uses_mpi
            else "nothing in the configs uses MPI, so no MPI is built or linked")
    if plumber:
        env.add("mochi-margo", "+hwloc", why="configs set margo.plumber (needs +hwloc)")
    else:
        env.add("mochi-margo")
    flock = cat.get("flock")
    if uses_mpi and flock is not None and flock.package in used \
            and "+mpi" not in used[flock.package]:
        used[flock.package].append("+mpi")
        why.setdefault(flock.package, []).append(
            "mochi-bedrock+mpi+flock needs mochi-flock+mpi")
    order = [c.package for c in cat.components.values()]
    for pkg in sorted(used, key=order.index):
        env.add(pkg, *used[pkg])
        for w in why.get(pkg, []):
            env.reasons.append(f"{spec_string(pkg, used[pkg])}: {w}")


# ---------------------------------------------------------------------------------------------
# Network stack, threads, site packages, repos


def _fail_site(message: str, path: tuple[str | int, ...], hint: str,
               plan: DeploymentPlan) -> InputError:
    file = plan.site_files[0] if plan.site_files else None  # the profile named on the CLI
    return InputError(Problem(message, path=path, hint=hint, file=file))


def _transport_index(plan: DeploymentPlan) -> int:
    names = [t.name for t in plan.site.transports]
    return names.index(plan.transport.name) if plan.transport.name in names else 0


def add_network(plan: DeploymentPlan, env: SpackEnvironment, kb: SpackKnowledge) -> None:
    t = plan.transport
    plugin, provider = mercury_plugin(t.protocol, kb)
    plugins = kb.section("mercury_plugins")
    tpath: tuple[str | int, ...] = ("transports", _transport_index(plan))
    if plugin not in plugins:
        raise _fail_site(f"transport {t.name!r} ({t.protocol}) uses the Mercury plugin "
                         f"{plugin!r}, which bedrock-deploy cannot build with Spack",
                         (*tpath, "protocol"), "use a protocol of: " + ", ".join(plugins), plan)
    env.add("mercury", *kb.section("mercury_always"), *plugins[plugin]["mercury"],
            why=f"never boost/checksums (platform-configurations); {t.protocol} uses the "
            f"{plugin} plugin")
    if not plugins[plugin]["libfabric"]:
        return
    prov = provider or t.provider
    vendor = [e for e in plan.site.spack.externals
              if _spec_name(e.spec) == "libfabric" and not e.buildable]
    if vendor:
        env.reasons.append(f"libfabric: the site's vendor build {vendor[0].spec} "
                           "(buildable: false), so no fabrics= request")
        return
    table = kb.section("libfabric_providers")
    if prov not in table:
        raise _fail_site(f"transport {t.name!r} uses libfabric provider {prov!r}, which "
                         "bedrock-deploy does not know", (*tpath, "provider"),
                         "use one of: " + ", ".join(table), plan)
    if not t.fabrics:
        raise _fail_site(f"transport {t.name!r} gives no libfabric fabrics for Spack to build",
                         (*tpath, "fabrics"),
                         f"add fabrics: [{', '.join(table[prov]['needs'])}], or list the site's "
                         "vendor libfabric under spack.externals with buildable: false", plan)
    extra = sorted(set(t.fabrics) - set(table[prov]["allowed"]))
    if extra:
        raise _fail_site(f"libfabric fabric{'s' if len(extra) > 1 else ''} {', '.join(extra)} "
                         f"not needed by transport {t.name!r} ({prov})", (*tpath, "fabrics"),
                         f"{prov} needs {', '.join(table[prov]['needs'])} (may add "
                         f"{', '.join(table[prov]['allowed'])}); remove the others", plan)
    env.add("libfabric", "fabrics=" + ",".join(t.fabrics),
            why=f"built for the {prov} provider of transport {t.name!r}")


def _spec_name(spec: str) -> str | None:
    try:
        return parse_spec(spec).root.name
    except SpecSyntaxError:
        return None


def add_threads(plan: DeploymentPlan, env: SpackEnvironment) -> None:
    if plan.layout.pins_threads:
        env.add("argobots", "+affinity",
                why="the layout pins xstreams to CPUs; without +affinity Argobots ignores it")
    else:
        env.add("argobots")


def add_site_packages(plan: DeploymentPlan, env: SpackEnvironment, kb: SpackKnowledge) -> None:
    sp = plan.site.spack
    compilers = kb.section("compilers")
    for i, comp in enumerate(sp.compilers):
        node = _parse_site_spec(comp.spec, ("spack", "compilers", i, "spec"), plan)
        entry_info = compilers.get(node.name or "")
        if entry_info is None:
            raise _fail_site(f"unknown compiler {node.name!r}", ("spack", "compilers", i, "spec"),
                             "use one of: " + ", ".join(compilers), plan)
        pkg = entry_info["package"]
        version = f"@{node.version}" if node.version else ""
        langs = " languages='c,c++,fortran'" if entry_info.get("languages") else ""
        ext: dict[str, Any] = {"spec": f"{pkg}{version}{langs}"}
        paths = compiler_paths(comp, entry_info)
        prefix = comp.prefix or str(Path(paths["c"]).parent.parent)
        ext["prefix"] = prefix
        # Spack >= 1.0: a compiler is an external of its package and must name its
        # executables, or Spack has no C compiler from it.
        ext["extra_attributes"] = {"compilers": paths}
        if comp.modules:
            ext["modules"] = list(comp.modules)
        env.packages.setdefault(pkg, {}).setdefault("externals", []).append(ext)
    mpis = kb.virtuals.get("mpi", [])
    for i, ext_model in enumerate(sp.externals):
        name = _parse_site_spec(ext_model.spec, ("spack", "externals", i, "spec"), plan).name
        assert name is not None
        entry = env.packages.setdefault(name, {})
        ext = {"spec": ext_model.spec}
        if ext_model.prefix:
            ext["prefix"] = ext_model.prefix
        if ext_model.modules:
            ext["modules"] = list(ext_model.modules)
        entry.setdefault("externals", []).append(ext)
        entry["buildable"] = entry.get("buildable", True) and ext_model.buildable
        if name in mpis and "mpi" not in env.packages:
            env.packages["mpi"] = {"require": [name]}
            env.reasons.append(f"mpi: the site's {ext_model.spec}")
    for name, reqs in sp.require.items():
        entry = env.packages.setdefault(name, {})
        for r in reqs:
            if r not in entry.setdefault("require", []):
                entry["require"].append(r)
    env.mirrors = dict(sp.mirrors)


def compiler_paths(comp: Any, info: dict[str, str]) -> dict[str, str]:
    """``extra_attributes.compilers`` of a site compiler: its ``paths``, else ``<prefix>/bin``."""
    if comp.paths is not None:
        out = {"c": comp.paths.c, "cxx": comp.paths.cxx}
        if comp.paths.fortran:
            out["fortran"] = comp.paths.fortran
        return out
    assert comp.prefix is not None  # check_site: a compiler has a prefix or paths
    return {lang: f"{comp.prefix.rstrip('/')}/bin/{info[lang]}" for lang in ("c", "cxx", "fortran")}


def _parse_site_spec(spec: str, path: tuple[str | int, ...], plan: DeploymentPlan) -> Any:
    try:
        node = parse_spec(spec).root
    except SpecSyntaxError as err:
        raise _fail_site(f"invalid spec {spec!r}: {err.message}", path,
                         "write name@version, e.g. gcc@13.3.0", plan) from None
    if node.name is None:
        raise _fail_site(f"spec {spec!r} names no package", path, "start with a name", plan)
    return node


def add_repos(plan: DeploymentPlan, env: SpackEnvironment, kb: SpackKnowledge,
              our_repo: str | None) -> None:
    known = kb.section("repos")
    pins = plan.site.spack.repos
    wanted = [MOCHI_REPO]
    for pkg in env.specs:
        info = kb.packages.get(pkg)
        for r in info.needs_repos if info else ():
            if r not in wanted:
                wanted.append(r)
    wanted += [r for r in pins if r not in wanted and r != BUILTIN_REPO]
    for name in wanted:
        env.repos[name] = _repo_entry(name, known, pins, plan)
    if our_repo:
        env.repos[OUR_REPO] = our_repo
    env.repos[BUILTIN_REPO] = _repo_entry(BUILTIN_REPO, known, pins, plan)


def _repo_entry(name: str, known: dict[str, Any], pins: dict[str, Any],
                plan: DeploymentPlan) -> dict[str, str]:
    pin = pins.get(name)
    git = (pin.git if pin else None) or known.get(name, {}).get("git")
    if not git:
        raise _fail_site(f"repo {name!r} has no git URL", ("spack", "repos", name, "git"),
                         "give git: <url> (and commit:, tag: or branch:)", plan)
    entry = {"git": git}
    if pin:
        given = [k for k in ("commit", "tag", "branch") if getattr(pin, k)]
        if len(given) > 1:
            raise _fail_site(f"repo {name!r} pins both {given[0]} and {given[1]}",
                             ("spack", "repos", name), "give one of commit, tag or branch", plan)
        for k in given:
            entry[k] = getattr(pin, k)
    return entry


# ---------------------------------------------------------------------------------------------
# Rendering


def build_spack_environment(plan: DeploymentPlan, *,
                            generator_source: Path | None = None) -> SpackEnvironment:
    kb = knowledge()
    env = SpackEnvironment()
    collect_components(plan, env, kb)
    add_threads(plan, env)
    add_network(plan, env, kb)
    add_site_packages(plan, env, kb)
    our_repo = None
    if generator_source is not None:
        source = Path(generator_source).resolve()
        if not (source / "pyproject.toml").is_file():
            raise InputError(Problem(f"{source} is not a bedrock-deploy source tree",
                                     hint="pass the directory holding pyproject.toml",
                                     file=str(source)))
        version = kb.packages[OUR_PACKAGE].latest
        env.add(OUR_PACKAGE, why="the generator and its embedded engine, built from "
                f"{source}")
        env.develop[OUR_PACKAGE] = {"spec": f"{OUR_PACKAGE}@={version}", "path": str(source)}
        our_repo = str((source / "spack-repo" / "spack_repo" / OUR_REPO)
                       if (source / "spack-repo").is_dir()
                       else spack_repo_dir() / "spack_repo" / OUR_REPO)
    add_repos(plan, env, kb, our_repo)
    return env


def _header(plan: DeploymentPlan, env: SpackEnvironment) -> str:
    site = plan.site
    sp = site.spack
    files = ", ".join(Path(f).name for f in plan.site_files) or site.name
    lines = [
        f"Spack environment of a Bedrock deployment on site '{site.name}', written by "
        "bedrock-deploy.",
        f"Site profile: {files}.",
        f"Spack: {sp.version or 'any release >= 1.0 (the site pins none)'}.",
    ]
    for name, entry in env.repos.items():
        if isinstance(entry, dict):
            pin = next((f"{k} {entry[k]}" for k in ("commit", "tag", "branch") if k in entry),
                       "unpinned (latest)")
            lines.append(f"Repo {name}: {entry['git']} {pin}.")
        else:
            lines.append(f"Repo {name}: {entry}.")
    lines.append("Why:")
    lines += [f"  {r}" for r in env.reasons]
    lines.append("Next (DIR = this directory):")
    lines += [f"  {s}" for s in next_steps()]
    return "\n".join(lines)


def _seq(items: list[Any], flow: bool = False) -> CommentedSeq:
    seq = CommentedSeq(items)
    if flow:
        seq.fa.set_flow_style()
    return seq


def render_spack_env(plan: DeploymentPlan, *, generator_source: Path | None = None) -> str:
    """The text of ``DIR/spack.yaml``; raises :class:`InputError` if it would not pass."""
    env = build_spack_environment(plan, generator_source=generator_source)
    spack = CommentedMap()
    spack["specs"] = _seq(env.spec_strings())
    spack["view"] = True
    spack["concretizer"] = CommentedMap(unify=True)
    spack["repos"] = CommentedMap(env.repos)
    packages = CommentedMap()
    for name, entry in env.packages.items():
        packages[name] = CommentedMap(entry)
    spack["packages"] = packages
    spack["modules"] = CommentedMap(prefix_inspections=CommentedMap(
        lib=_seq(["LD_LIBRARY_PATH"], flow=True), lib64=_seq(["LD_LIBRARY_PATH"], flow=True)))
    if env.mirrors:
        spack["mirrors"] = CommentedMap(env.mirrors)
    if env.develop:
        spack["develop"] = CommentedMap(env.develop)
    doc = CommentedMap(spack=spack)
    doc.yaml_set_start_comment(_header(plan, env))
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(doc, buf)
    text = buf.getvalue()
    verify_generated(text, plan)
    return text
