"""Finding, loading and merging site profiles (``extends``), with located errors."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bedrock_deploy.diagnostics import InputError, KeyPath, Problem, SourceLocation, fail
from bedrock_deploy.files import is_file
from bedrock_deploy.resources import site_profiles_dir
from bedrock_deploy.site_profile import SiteProfile, check_site
from bedrock_deploy.validation import validate_model
from bedrock_deploy.yaml_source import Locations, load_yaml, locate

PROFILE_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedSite:
    """A validated profile, the merged data behind it, and where each key came from.

    Example::

        site = bd.load_site("aurora")
        print(site.profile.launcher.type, site.files, site.locate(("launcher", "type")))
    """

    profile: SiteProfile
    data: dict[str, Any]
    locations: Locations
    files: list[str]  # the profile first, then what it extends, outermost last

    @property
    def file(self) -> str:
        return self.files[0]

    def locate(self, path: KeyPath) -> SourceLocation:
        return locate(self.locations, path, self.file)


def shipped_profiles() -> dict[str, Path]:
    root = site_profiles_dir()
    return {p.stem: p for p in sorted(root.glob("*.y*ml")) if p.suffix in PROFILE_SUFFIXES}


def resolve_profile(ref: str, relative_to: Path | None = None) -> Path:
    """A profile given by path, or by the name of a shipped profile."""
    p = Path(ref)
    candidates = []
    if p.suffix in PROFILE_SUFFIXES or "/" in ref:
        candidates.append(p if p.is_absolute() or relative_to is None else relative_to / p)
        candidates.append(p)
    else:
        if relative_to is not None:
            candidates += [relative_to / f"{ref}{s}" for s in PROFILE_SUFFIXES]
        shipped = shipped_profiles()
        if ref in shipped:
            candidates.append(shipped[ref])
    for c in candidates:
        if is_file(c):
            return c
    known = ", ".join(shipped_profiles())
    raise fail(f"no site profile {ref!r}", hint=f"give a file path, or one of: {known}")


def deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; lists and scalars in ``override`` replace ``base``."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def _merge_locations(base: Locations, override: Locations, override_data: Any) -> Locations:
    """Locations after ``deep_merge``: replaced lists/scalars take all their subpaths along."""
    out = dict(base)

    def replaced(path: KeyPath, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                replaced((*path, k), v)
            return
        # a list or scalar replaces everything below this path in the base
        for key in [k for k in out if k[: len(path)] == path and len(k) > len(path)]:
            del out[key]

    replaced((), override_data)
    out.update(override)
    return out


NODE_PROBE = "probe"
"""``node: probe`` in a profile: the node is this host, probed (sysfs) when the profile loads."""


def _probed_node(where: SourceLocation) -> dict[str, Any]:
    from bedrock_deploy.probe import ProbeError, probe_host  # local: probing reads /sys

    try:
        result = probe_host()
    except ProbeError as err:
        raise fail(f"'node: probe' could not probe this host: {err}", path=("node",),
                   location=where, hint="write the node topology in the profile instead "
                   "(bedrock-deploy probe -o FILE writes one to start from)") from None
    return result.node.model_dump(mode="json", exclude_none=True)


def _load_raw(path: Path, stack: list[Path]) -> tuple[dict[str, Any], Locations, list[str]]:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise fail("a site profile is a YAML mapping", location=doc.locate(()),
                   hint="start with 'name: my-site'")
    if doc.data.get("node") == NODE_PROBE:
        # Probe here, before merging, so a profile extending this one can override parts of
        # the probed node (e.g. reserved_cores) instead of replacing it.
        doc.data["node"] = _probed_node(doc.locate(("node",)))
    parent_ref = doc.data.get("extends")
    if parent_ref is None:
        return doc.data, doc.locations, [doc.file]
    if not isinstance(parent_ref, str):
        raise fail("'extends' names one profile", path=("extends",),
                   location=doc.locate(("extends",)), hint="write e.g. 'extends: polaris'")
    try:
        parent = resolve_profile(parent_ref, path.parent).resolve()
    except InputError as err:
        p = err.problems[0]
        raise fail(p.message, path=("extends",), location=doc.locate(("extends",)),
                   hint=p.hint) from None
    if parent in stack:
        chain = " -> ".join(s.name for s in [*stack, parent])
        raise fail(f"inheritance cycle: {chain}", path=("extends",),
                   location=doc.locate(("extends",)),
                   hint="remove 'extends' from one profile in the cycle")
    base, base_locs, files = _load_raw(parent, [*stack, parent])
    merged = deep_merge(base, doc.data)
    merged.pop("extends", None)
    merged["extends"] = parent_ref
    return merged, _merge_locations(base_locs, doc.locations, doc.data), [doc.file, *files]


def load_site(ref: str | Path) -> LoadedSite:
    """Load, merge and validate a site profile; raise InputError with located problems.

    ``node: probe`` in any file of the ``extends`` chain is replaced by this host's topology
    (:func:`bedrock_deploy.probe.probe_host`) before merging, so a profile extending it can
    override parts of the probed node; ``LoadedSite.data`` holds the probed node.
    """
    try:
        path = resolve_profile(str(ref)).resolve() if not is_file(ref) else Path(ref)
    except InputError as err:  # the reference itself is the input that is wrong
        raise InputError([replace(p, file=str(ref)) if p.location is None and p.file is None
                          else p for p in err.problems]) from None
    data, locations, files = _load_raw(path, [path.resolve()])
    file = files[0]

    def where(p: KeyPath) -> SourceLocation:
        return locate(locations, p, file)


    profile = validate_model(SiteProfile, data, where)
    problems = [
        Problem(p.message, path=p.path, location=where(p.path), hint=p.hint)
        for p in check_site(profile)
    ]
    if problems:
        raise InputError(problems)
    return LoadedSite(profile=profile, data=data, locations=locations, files=files)
