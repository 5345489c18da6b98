"""Parsers for libfabric's ``fi_info`` (short and ``-v`` forms) and ``fi_info -l``.

Short form, one block per entry (real output of this machine: tests/data/transports/ and
docs/platform-notes.md, "libfabric")::

    provider: tcp;ofi_rxm
        fabric: 192.0.2.0/24
        domain: eth0
        version: 117.0
        type: FI_EP_RDM
        protocol: FI_PROTO_RXM

``-v`` prints YAML-like ``fi_info:`` documents separated by ``---``; we read
``fi_fabric_attr.prov_name/name/prov_version``, ``fi_domain_attr.name`` and
``fi_ep_attr.type/protocol``. When no provider matches, fi_info prints ``fi_getinfo: -61``
(-FI_ENODATA) on stderr and exits 61. ``fi_info -l`` lists compiled-in providers: ``name:`` then
``    version: 117.0``; that proves nothing about hardware (psm2 is listed on this machine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bedrock_deploy.transports.report_text import UnknownLine, numbered_lines, parse_error

_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")
_GETINFO_ERROR = re.compile(r"^fi_getinfo:\s*(-?\d{1,9})\b")  # libfabric errnos are small
_SHORT_KEYS = {"fabric": "fabric", "domain": "domain", "version": "version", "type": "ep_type",
               "protocol": "protocol"}
_VERBOSE_KEYS = {
    ("fi_info", "fi_fabric_attr", "prov_name"): "provider",
    ("fi_info", "fi_fabric_attr", "name"): "fabric",
    ("fi_info", "fi_fabric_attr", "prov_version"): "version",
    ("fi_info", "fi_domain_attr", "name"): "domain",
    ("fi_info", "fi_ep_attr", "type"): "ep_type",
    ("fi_info", "fi_ep_attr", "protocol"): "protocol",
}
FI_ENODATA = 61

SAVE_HINT = ("save the whole output on a compute node, stderr included: "
             "'fi_info > fi_info.txt 2>&1' (or 'fi_info -l > fi_info-l.txt')")


@dataclass(frozen=True)
class FiInfoEntry:
    """One fi_info entry: a provider on a fabric/domain with an endpoint type."""

    provider: str  # "tcp;ofi_rxm", "cxi", "verbs;ofi_rxm", ...
    fabric: str | None
    domain: str | None  # NIC / interface: "eth0", "cxi0", "mlx5_0"
    version: str | None
    ep_type: str | None  # "FI_EP_RDM", "FI_EP_MSG", "FI_EP_DGRAM"
    protocol: str | None
    line: int

    @property
    def core_provider(self) -> str:
        """The provider under any utility layer: ``verbs;ofi_rxm`` -> ``verbs``."""
        return self.provider.split(";", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "fabric": self.fabric, "domain": self.domain,
                "version": self.version, "type": self.ep_type, "protocol": self.protocol,
                "line": self.line}


@dataclass(frozen=True)
class FiInfoReport:
    file: str
    format: str  # "short" or "verbose"
    entries: tuple[FiInfoEntry, ...]
    getinfo_error: int | None = None  # from "fi_getinfo: -61" (61 = no provider matched)
    unknown_lines: tuple[UnknownLine, ...] = field(default_factory=tuple)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.provider for e in self.entries))

    def entries_for(self, core_provider: str) -> tuple[FiInfoEntry, ...]:
        return tuple(e for e in self.entries if e.core_provider == core_provider)

    def domains_for(self, core_provider: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.domain for e in self.entries_for(core_provider)
                                   if e.domain))

    def fabrics_for(self, core_provider: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.fabric for e in self.entries_for(core_provider)
                                   if e.fabric))

    def ep_types_for(self, core_provider: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.ep_type for e in self.entries_for(core_provider)
                                   if e.ep_type))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "getinfo_error": self.getinfo_error,
                "providers": list(self.providers),
                "entries": [e.to_dict() for e in self.entries],
                "unknown_lines": [u.to_dict() for u in self.unknown_lines]}


@dataclass(frozen=True)
class FiProviderList:
    """``fi_info -l``: providers compiled into libfabric, with their versions."""

    file: str
    providers: tuple[tuple[str, str], ...]  # (name, version)
    unknown_lines: tuple[UnknownLine, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.providers)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "providers": dict(self.providers),
                "unknown_lines": [u.to_dict() for u in self.unknown_lines]}


class _Draft:
    def __init__(self, line: int, provider: str | None = None):
        self.line = line
        self.values: dict[str, str] = {}
        if provider is not None:
            self.values["provider"] = provider

    def finish(self, file: str) -> FiInfoEntry:
        if not self.values.get("provider"):
            raise parse_error("this fi_info entry names no provider (fi_fabric_attr.prov_name): "
                              "the output is truncated", file=file, line=self.line,
                              hint=SAVE_HINT)
        if len(self.values) == 1:
            raise parse_error(f"provider {self.values['provider']!r} has no attributes "
                              "(fabric, domain, type...): the output is truncated",
                              file=file, line=self.line, hint=SAVE_HINT)
        v = self.values
        return FiInfoEntry(provider=v["provider"], fabric=v.get("fabric"),
                           domain=v.get("domain"), version=v.get("version"),
                           ep_type=v.get("ep_type"), protocol=v.get("protocol"), line=self.line)


def is_provider_list(text: str) -> bool:
    """True for ``fi_info -l`` output (``name:`` lines with indented ``version:`` only)."""
    saw_version = False
    for _, line in numbered_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(("provider:", "fi_info:")):
            return False
        if stripped.startswith("version:"):
            saw_version = True
    return saw_version


def parse_fi_info(text: str, file: str) -> FiInfoReport:
    """Parse ``fi_info`` output, short or ``-v``; ``fi_getinfo: -61`` means no provider matched."""
    verbose = any(line.strip() == "fi_info:" for _, line in numbered_lines(text))
    entries: list[FiInfoEntry] = []
    unknown: list[UnknownLine] = []
    error: int | None = None
    draft: _Draft | None = None
    sections: list[tuple[int, str]] = []  # (indent, key) of open "-v" sections
    last = 0
    for number, line in numbered_lines(text):
        last = number
        stripped = line.strip()
        if not stripped or stripped == "---":
            continue
        err = _GETINFO_ERROR.match(stripped)
        if err:
            error = abs(int(err.group(1)))
            continue
        # "FI_PROTO_XNETfi_getinfo: -61": stdout's last line has no newline before stderr
        glued = re.search(r"fi_getinfo:\s*(-?\d{1,9})$", stripped)
        if glued and not verbose:
            error = abs(int(glued.group(1)))
            stripped = stripped[: glued.start()]
            line = line[: line.rfind("fi_getinfo:")]
        kv = _KEY_VALUE.match(stripped)
        if verbose:
            indent = len(line) - len(line.lstrip())
            if stripped == "fi_info:" and indent == 0:
                if draft is not None:
                    entries.append(draft.finish(file))
                draft = _Draft(number)
                sections = [(0, "fi_info")]
                continue
            if kv is None or draft is None:
                unknown.append(UnknownLine(number, line))
                continue
            while sections and sections[-1][0] >= indent:
                sections.pop()
            key, value = kv.group(1), kv.group(2)
            if value is None:
                sections.append((indent, key))
                continue
            target = _VERBOSE_KEYS.get((*(k for _, k in sections), key))
            if target is not None:
                draft.values[target] = value.strip()
            continue
        if kv and kv.group(1) == "provider":
            if draft is not None:
                entries.append(draft.finish(file))
            if not kv.group(2):
                raise parse_error("'provider:' without a name", file=file, line=number,
                                  hint=SAVE_HINT)
            draft = _Draft(number, kv.group(2).strip())
            continue
        if kv and draft is not None and kv.group(1) in _SHORT_KEYS:
            if not kv.group(2):
                raise parse_error(f"{kv.group(1)!r} has no value: the output is truncated",
                                  file=file, line=number, column=line.find(kv.group(1)) + 1,
                                  hint=SAVE_HINT)
            draft.values[_SHORT_KEYS[kv.group(1)]] = kv.group(2).strip()
            continue
        unknown.append(UnknownLine(number, line))
    if draft is not None:
        entries.append(draft.finish(file))
    if not entries and error is None:
        raise parse_error(
            "no fi_info entries found: this is not fi_info output, or it is empty (when no "
            "provider matches, fi_info prints 'fi_getinfo: -61' on stderr)",
            file=file, line=max(1, last), hint=SAVE_HINT)
    return FiInfoReport(file=file, format="verbose" if verbose else "short",
                        entries=tuple(entries), getinfo_error=error,
                        unknown_lines=tuple(unknown))


def parse_fi_info_list(text: str, file: str) -> FiProviderList:
    """Parse ``fi_info -l``."""
    providers: list[tuple[str, str]] = []
    unknown: list[UnknownLine] = []
    current: tuple[int, str] | None = None
    for number, line in numbered_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        kv = _KEY_VALUE.match(stripped)
        indented = line[:1].isspace()
        if kv and not indented and kv.group(2) is None:
            if current is not None:
                raise parse_error(f"provider {current[1]!r} has no version line: the output "
                                  "is truncated or edited", file=file, line=current[0],
                                  hint=SAVE_HINT)
            current = (number, kv.group(1))
            continue
        if kv and indented and kv.group(1) == "version" and current is not None:
            if not kv.group(2):
                raise parse_error("'version:' has no value: the output is truncated",
                                  file=file, line=number, hint=SAVE_HINT)
            providers.append((current[1], kv.group(2).strip()))
            current = None
            continue
        unknown.append(UnknownLine(number, line))
    if current is not None:
        raise parse_error(f"provider {current[1]!r} has no version line: the output is "
                          "truncated", file=file, line=current[0], hint=SAVE_HINT)
    if not providers:
        raise parse_error("no providers found: this is not 'fi_info -l' output",
                          file=file, line=1, hint=SAVE_HINT)
    return FiProviderList(file=file, providers=tuple(providers), unknown_lines=tuple(unknown))
