"""The component catalogue (``share/components.json``): what each Bedrock provider type needs.

One entry per provider type (its module library, Spack package and the variants its settings
need, the config bedrock-deploy writes when a service gives none, the pool role it runs on,
the dependency keys its module declares, what the real module reports as its running config,
and whether the embedded engine implements it), with a JSON Schema
(``share/schemas/components.schema.json``), in the manner of archspec's
``microarchitectures.json``. The service loader, the validator, the Spack environment and the
engine (which compiles the same file in) all read it; ``tests/test_components.py`` fails when
one of them disagrees. :func:`config_uses_mpi` is the one place that decides whether a Bedrock
config needs MPI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from bedrock_deploy.resources import share_path

CATALOGUE_FILE = ("components.json",)
SCHEMA_FILE = ("schemas", "components.schema.json")
PoolRole = Literal["rpc", "io"]
MPI_VARIABLE = "$MPI_COMM_WORLD"


def _get(config: Any, key: tuple[str, ...]) -> Any:
    node = config
    for k in key:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


@dataclass(frozen=True)
class Dependency:
    """A dependency key a module declares (``bedrock::Dependency`` in its GetDependencies)."""

    name: str
    type: str  # "pool", "xstream", "margo", or a provider type
    required: bool
    array: bool


@dataclass(frozen=True)
class VariantRule:
    """A setting of the provider's config that needs a variant of the component's package."""

    key: tuple[str, ...]
    test: Literal["contains", "positive", "equals"]
    value: Any
    variant: str
    uses_mpi: bool
    why: str

    def applies(self, config: Any) -> bool:
        v = _get(config, self.key)
        if self.test == "positive":
            return isinstance(v, int) and not isinstance(v, bool) and v > 0
        if self.test == "contains":
            return v == self.value or (isinstance(v, list) and self.value in v)
        return bool(v == self.value)


@dataclass(frozen=True)
class ChoiceValue:
    variant: str | None
    engine: bool
    reported_path: tuple[str, ...] | None
    reported_defaults: dict[str, Any] | None


@dataclass(frozen=True)
class Choice:
    """A config key selecting an implementation (yokan's database.type, flock's group.type)."""

    key: tuple[str, ...]
    required: bool
    values: dict[str, ChoiceValue]

    def selected(self, config: Any) -> Any:
        return _get(config, self.key)

    @property
    def path(self) -> str:
        return ".".join(self.key)


@dataclass(frozen=True)
class ComponentType:
    name: str
    description: str
    library: str
    package: str
    repo: str
    latest: str
    needs_repos: tuple[str, ...]
    spack_variants: dict[str, dict[str, Any]]
    default_config: dict[str, Any]
    pool_role: PoolRole
    min_pool_xstreams: tuple[tuple[str, ...], int, str] | None  # (key, add, why)
    dependencies: tuple[Dependency, ...]
    open_dependencies: bool
    variant_rules: tuple[VariantRule, ...]
    choices: tuple[Choice, ...]
    reported_defaults: dict[str, Any]
    reported_drop: tuple[str, ...]
    engine_implemented: bool
    engine_note: str
    sources: tuple[str, ...]

    def pool_xstreams_needed(self, config: Any) -> int:
        """How many xstreams the provider's pool needs at least (0: no requirement)."""
        if self.min_pool_xstreams is None:
            return 0
        key, add, _why = self.min_pool_xstreams
        v = _get(config, key)
        n = v if isinstance(v, int) and not isinstance(v, bool) else 0
        return n + add if n > 0 else 0

    def dependency(self, name: str) -> Dependency | None:
        return next((d for d in self.dependencies if d.name == name), None)

    def variants_for(self, config: Any) -> Iterator[tuple[str, str]]:
        """(variant token, why) the provider config needs; unknown choice values are left to
        :meth:`unknown_choices`."""
        for rule in self.variant_rules:
            if rule.applies(config):
                yield rule.variant, rule.why
        for choice in self.choices:
            value = choice.selected(config)
            entry = choice.values.get(value) if isinstance(value, str) else None
            if entry is not None and entry.variant:
                yield entry.variant, f"{choice.path} {value!r} needs it"

    def unknown_choices(self, config: Any) -> Iterator[tuple[Choice, Any]]:
        for choice in self.choices:
            value = choice.selected(config)
            if value is not None and (not isinstance(value, str) or value not in choice.values):
                yield choice, value

    def uses_mpi(self, config: Any) -> bool:
        return any(r.uses_mpi and r.applies(config) for r in self.variant_rules)


@dataclass(frozen=True)
class Catalogue:
    components: dict[str, ComponentType]
    raw: dict[str, Any]

    def __getitem__(self, name: str) -> ComponentType:
        return self.components[name]

    def get(self, name: Any) -> ComponentType | None:
        return self.components.get(name) if isinstance(name, str) else None

    def by_library(self, library: str) -> list[ComponentType]:
        """The components a ``libraries`` entry (a name or a path) registers (a module library
        may register several types, e.g. REMI's sender and receiver)."""
        base = Path(library).name
        return [c for c in self.components.values() if c.library == base]

    @property
    def libraries(self) -> dict[str, str]:
        return {name: c.library for name, c in self.components.items()}


def _component(name: str, e: dict[str, Any]) -> ComponentType:
    choices = []
    for c in e["choices"]:
        values = {}
        for v, entry in c["values"].items():
            rep = entry.get("reported")
            values[v] = ChoiceValue(variant=entry.get("variant"), engine=bool(entry["engine"]),
                                    reported_path=tuple(rep["path"]) if rep else None,
                                    reported_defaults=rep["defaults"] if rep else None)
        choices.append(Choice(key=tuple(c["key"]), required=bool(c["required"]), values=values))
    spack = e["spack"]
    return ComponentType(
        name=name, description=e["description"], library=e["library"],
        package=spack["package"], repo=spack["repo"], latest=str(spack["latest"]),
        needs_repos=tuple(spack.get("needs_repos", ())), spack_variants=dict(spack["variants"]),
        default_config=e["default_config"], pool_role=e["pool_role"],
        min_pool_xstreams=(tuple(e["min_pool_xstreams"]["key"]), int(e["min_pool_xstreams"]["add"]),
                           e["min_pool_xstreams"]["why"]) if "min_pool_xstreams" in e else None,
        dependencies=tuple(Dependency(d["name"], d["type"], bool(d["required"]), bool(d["array"]))
                           for d in e["dependencies"]),
        open_dependencies=bool(e.get("open_dependencies", False)),
        variant_rules=tuple(VariantRule(tuple(r["key"]), r["test"], r.get("value"), r["variant"],
                                        bool(r["uses_mpi"]), r["why"]) for r in e["variant_rules"]),
        choices=tuple(choices), reported_defaults=e["reported_config"]["defaults"],
        reported_drop=tuple(e["reported_config"]["drop"]),
        engine_implemented=bool(e["engine"]["implemented"]), engine_note=e["engine"]["note"],
        sources=tuple(e["sources"]))


def load_catalogue(path: Path) -> Catalogue:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Catalogue(components={n: _component(n, e) for n, e in raw["components"].items()},
                     raw=raw)


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The shipped catalogue (``share/components.json``)."""
    return load_catalogue(share_path(*CATALOGUE_FILE))


def schema() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(share_path(*SCHEMA_FILE).read_text(encoding="utf-8"))
    return result


# ---- does a config use MPI? (the one place that decides it) ----------------------------------
_RANK_LOCATOR = re.compile(r"@[0-9]+$")


def _if_conditions(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        cond = obj.get("__if__")
        if isinstance(cond, str):
            yield cond
        for v in obj.values():
            yield from _if_conditions(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _if_conditions(v)


def config_uses_mpi(config: Any) -> list[str]:
    """Why a Bedrock config needs an MPI-enabled Bedrock and an MPI launch (empty: it does not):
    an ``__if__`` on ``$MPI_COMM_WORLD``, a provider setting the catalogue marks as using MPI
    (flock's ``"bootstrap": "mpi"``), or a dependency located by MPI rank (``name@0``)."""
    configs = config if isinstance(config, list) else [config]
    reasons: list[str] = []
    for cfg in configs:
        if not isinstance(cfg, dict):
            continue
        if any(MPI_VARIABLE in c for c in _if_conditions(cfg)):
            reasons.append(f'an "__if__" condition uses {MPI_VARIABLE}')
        providers = cfg.get("providers", [])
        for p in providers if isinstance(providers, list) else []:
            if not isinstance(p, dict):
                continue
            ctype = catalogue().get(p.get("type"))
            if ctype is not None and ctype.uses_mpi(p.get("config")):
                rule = next(r for r in ctype.variant_rules if r.uses_mpi and r.applies(
                    p.get("config")))
                reasons.append(f"provider {p.get('name')!r}: {rule.why}")
            deps = p.get("dependencies", {})
            for key, val in deps.items() if isinstance(deps, dict) else []:
                for ref in val if isinstance(val, list) else [val]:
                    if isinstance(ref, str) and _RANK_LOCATOR.search(ref):
                        reasons.append(f"provider {p.get('name')!r}: dependency {key!r} "
                                       f"names a provider by MPI rank ({ref!r})")
    return list(dict.fromkeys(reasons))
