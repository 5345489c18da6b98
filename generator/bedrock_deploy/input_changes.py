"""What ``generate`` changed in a user's own Bedrock JSON config, said out loud.

A service given as an existing Bedrock config keeps its libraries and providers, but its
``margo`` section is re-planned for the site, Bedrock's own provider id becomes 0, pools
become the planned ones, providers without an id get one, and keys Bedrock would ignore are
dropped. :func:`input_changes` compares the user's config with the config generated for local
rank 0 and lists every difference; ``generate`` records them in the manifest
(``input_changes``) and prints them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

_PROVIDER_KEYS = ("provider_id", "tags", "config", "dependencies", "__if__", "type")


@dataclass(frozen=True)
class InputChange:
    path: str  # in the user's config, e.g. "bedrock.provider_id"
    was: Any
    now: Any  # None: removed
    why: str

    def describe(self) -> str:
        now = "removed" if self.now is None else _short(self.now)
        return f"{self.path}: {_short(self.was)} -> {now} ({self.why})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(v: Any, limit: int = 80) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _summary_argobots(abt: Any) -> str:
    if not isinstance(abt, dict):
        return json.dumps(abt)
    pools = [p.get("name") for p in abt.get("pools", []) if isinstance(p, dict)]
    xs = [x.get("name") for x in abt.get("xstreams", []) if isinstance(x, dict)]
    return f"pools {pools}, xstreams {xs}"


def input_changes(original: dict[str, Any], generated: dict[str, Any]) -> list[InputChange]:
    """Every difference that matters between the user's config and the generated one."""
    out: list[InputChange] = []
    for key in original:
        if key not in generated:
            out.append(InputChange(key, original[key], None, "Bedrock 0.16 ignores this section; "
                                   "bedrock-deploy does not carry it over"))
    libs, glibs = original.get("libraries"), generated.get("libraries")
    if "libraries" in original and not (isinstance(libs, list) and isinstance(glibs, list)
                                        and sorted(map(str, libs)) == sorted(map(str, glibs))):
        out.append(InputChange("libraries", original.get("libraries"),
                               generated.get("libraries"),
                               "the modules of the providers' types, from the component "
                               "catalogue"))
    ob, gb = original.get("bedrock", {}), generated.get("bedrock", {})
    if isinstance(ob, dict):
        for key in ("provider_id", "pool"):
            if key in ob and ob[key] != gb.get(key):
                why = ("bedrock-deploy gives Bedrock provider id 0 and its providers ids from 1"
                       if key == "provider_id" else "Bedrock's RPCs run in the planned rpc pool")
                out.append(InputChange(f"bedrock.{key}", ob[key], gb.get(key), why))
        for key in sorted(set(ob) - {"provider_id", "pool"}):
            if ob[key] != gb.get(key):
                out.append(InputChange(f"bedrock.{key}", ob[key], gb.get(key),
                                       "not carried over"))
    om, gm = original.get("margo", {}), generated.get("margo", {})
    if isinstance(om, dict) and isinstance(gm, dict):
        for key in om:
            if key == "argobots":
                if om[key] != gm.get(key):
                    out.append(InputChange("margo.argobots", _summary_argobots(om[key]),
                                           _summary_argobots(gm.get(key)),
                                           "pools and xstreams are planned from the site's "
                                           "topology and the service's threads"))
            elif key == "mercury" and isinstance(om[key], dict):
                gmerc = gm.get("mercury", {})
                for mk in om[key]:
                    if om[key][mk] != gmerc.get(mk):
                        out.append(InputChange(f"margo.mercury.{mk}", om[key][mk],
                                               gmerc.get(mk),
                                               "the site's transport decides the protocol and "
                                               "its mercury settings"))
            elif om[key] != gm.get(key):
                out.append(InputChange(f"margo.{key}", om[key], gm.get(key),
                                       "re-planned (threads and placement come from the service "
                                       "and the site)"))
    gprov = {p.get("name"): p for p in generated.get("providers", []) if isinstance(p, dict)}
    for i, p in enumerate(original.get("providers", []) or []):
        if not isinstance(p, dict):
            continue
        name = p.get("name")
        g = gprov.get(name)
        where = f"providers[{i}]"
        if g is None:
            if "__if__" not in p:
                out.append(InputChange(where, name, None, "not in the generated config"))
            continue
        for key in p:
            if key == "name":
                continue
            if key not in _PROVIDER_KEYS:
                out.append(InputChange(f"{where}.{key}", p[key], None, "not part of Bedrock's "
                                       "provider schema: Bedrock 0.16 ignores it"))
            elif key == "dependencies" and isinstance(p[key], dict):
                gdeps = g.get("dependencies", {})
                for dk, dv in p[key].items():
                    if dv != gdeps.get(dk):
                        out.append(InputChange(f"{where}.dependencies.{dk}", dv, gdeps.get(dk),
                                               "pools are the planned ones" if dk == "pool"
                                               else "re-planned"))
            elif p[key] != g.get(key):
                out.append(InputChange(f"{where}.{key}", p[key], g.get(key),
                                       "re-planned"))
        if "provider_id" not in p:
            out.append(InputChange(f"{where}.provider_id", None, g.get("provider_id"),
                                   "providers without an id get the next free id from 1"))
        if "dependencies" not in p and g.get("dependencies", {}).get("pool") is not None:
            out.append(InputChange(f"{where}.dependencies.pool", None,
                                   g["dependencies"]["pool"], "every provider runs on a planned "
                                   "pool"))
    return out
