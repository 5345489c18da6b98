"""Choose the Mercury transport of a deployment from the site profile and what hosts report.

The rule, exactly (``select_transport``):

1. Every transport the site lists is a candidate. Its ``reported usable?`` verdict comes from
   the strongest report that covers it, in this order: margo-info (it really initialises the
   address: YES/NO), fi_info (is the libfabric provider listed: yes/no), hg_info (does Mercury
   list the class+protocol: yes/no), fi_info -l (compiled in: unknown; not compiled in: no).
   No report covers it: ``unknown`` (the profile is trusted, and the verdict says so).
2. A candidate is rejected when reported ``no``, or when it reaches one node only (scope
   ``intra-node``, or a shared-memory protocol: na+sm://, sm://, ofi+shm://) and the service
   spans more than one node.
3. Among the rest the chosen one minimises, in this order: intra-node scope (inter-node first,
   so clients on other nodes can reach even a one-node service), ``unknown`` after ``yes``
   (confirmed before unconfirmed), the fabric speed tier (cxi/gni, verbs/efa, opx/psm2, ucx, tcp,
   sockets; protocols.TIERS), then the position in the site's list (earlier wins ties).
   ``prefer=NAME`` picks that transport instead, if it is not rejected.
4. Nothing left: InputError listing every candidate and why, plus the commands to run on a
   compute node.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bedrock_deploy.diagnostics import InputError, KeyPath, Problem, SourceLocation
from bedrock_deploy.launch.launcher import launcher_class
from bedrock_deploy.plan import TransportChoice
from bedrock_deploy.site_profile import SiteProfile, Transport, TransportScope
from bedrock_deploy.transports.host_reports import HostReports
from bedrock_deploy.transports.protocols import (
    DEFAULT_FABRICS,
    INTRA_NODE_FAMILIES,
    TIER_ORDER_TEXT,
    TIERS,
    ProtocolSpec,
    parse_protocol,
)


class Usable(StrEnum):
    yes = "yes"
    no = "no"
    unknown = "unknown"


@dataclass(frozen=True)
class Verdict:
    """One candidate transport: what the hosts say about it, whether it was chosen, and why."""

    candidate: str  # the site profile's transport name
    protocol: str  # normalised specifier we would pass
    family: str  # cxi, verbs, opx, psm2, ucx, tcp, sockets, sm, shm, ...
    reported_usable: Usable
    chosen: bool
    reason: str
    evidence: tuple[str, ...] = ()  # report files that decided reported_usable
    runtime_address: str | None = None  # example address margo-info got

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "protocol": self.protocol, "family": self.family,
                "reported_usable": self.reported_usable.value, "chosen": self.chosen,
                "reason": self.reason, "evidence": list(self.evidence),
                "runtime_address": self.runtime_address}


@dataclass(frozen=True)
class TransportSelection:
    choice: TransportChoice
    verdicts: tuple[Verdict, ...]
    nodes: int
    sources: tuple[str, ...] = ()  # report files used
    trusted_profile: bool = False  # no report at all: the profile was taken on trust
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def chosen(self) -> Verdict:
        return next(v for v in self.verdicts if v.chosen)

    def to_dict(self) -> dict[str, Any]:
        c = self.choice
        return {
            "nodes": self.nodes,
            "chosen": {"name": c.name, "protocol": c.protocol, "provider": c.provider,
                       "fabrics": list(c.fabrics), "env": dict(c.env),
                       "launcher_flags": list(c.launcher_flags), "mercury": dict(c.mercury),
                       "reason": c.reason},
            "candidates": [v.to_dict() for v in self.verdicts],
            "sources": list(self.sources),
            "trusted_profile": self.trusted_profile,
            "notes": list(self.notes),
        }


_FAMILY_TOOL = {"cxi": "cxi_stat", "verbs": "ibstat", "ucx": "ucx_info -d", "tcp": "ip -br addr",
                "opx": "fi_info -p opx", "psm2": "fi_info -p psm2", "efa": "fi_info -p efa"}


@dataclass
class _Assessment:
    usable: Usable
    reason: str
    evidence: tuple[str, ...] = ()
    runtime_address: str | None = None


def _listing(names: tuple[str, ...] | list[str], limit: int = 8) -> str:
    names = list(dict.fromkeys(names))
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _assess(spec: ProtocolSpec, reports: HostReports) -> _Assessment:
    provider = spec.ofi_provider
    fi = reports.fi_info
    fi_domains = fi.domains_for(provider) if (fi and provider) else ()
    fi_note = ""
    if fi is not None and provider and fi_domains:
        fi_note = f"fi_info lists the {provider} provider on {_listing(fi_domains)}"

    margo = reports.margo_info
    if margo is not None:
        row = next((r for a in spec.margo_info_addresses() if (r := margo.row_for(a))), None)
        if row is not None:
            where = f"{margo.file}:{row.line}"
            host = f" on {margo.host}" if margo.host else ""
            evidence = (margo.file,) + ((fi.file,) if fi_note and fi else ())
            if row.usable:
                text = f"margo-info{host} initialised {row.addr} ({where})"
                if row.example_address:
                    text += f"; runtime addresses look like {row.example_address}"
                    prefix = row.runtime_prefix
                    if prefix and prefix != spec.address and ";" in prefix:
                        text += (f" (Mercury adds '{prefix.split('://')[0].split(';', 1)[1]}' "
                                 f"itself; we pass {spec.address})")
                return _Assessment(Usable.yes, text, evidence, row.example_address)
            text = f"margo-info{host} could not initialise {row.addr} ({where})"
            if spec.family == "verbs" and fi_note:
                text = (f"{fi_note}, but {text}: the InfiniBand device has no usable IPoIB "
                        "address (Mercury's verbs path needs rdmacm; mochi-margo#235); "
                        "configure IPoIB on it or use another transport")
            elif spec.family == "cxi":
                text += ("; a CXI NIC needs a VNI from the launcher: run margo-info under "
                         "srun --network=job_vni,single_node_vni or mpiexec --single-node-vni")
                if fi_note:
                    text += f" ({fi_note})"
            elif fi_note:
                text += f", although {fi_note}"
            return _Assessment(Usable.no, text, evidence)

    if fi is not None and provider:
        if fi_domains:
            types = _listing(fi.ep_types_for(provider))
            text = f"{fi_note} ({fi.file}, endpoint types {types}); not confirmed by margo-info"
            if spec.family == "verbs":
                text += (" (verbs also needs an IPoIB address, which fi_info does not check: "
                         "mochi-margo#235)")
            return _Assessment(Usable.yes, text, (fi.file,))
        if not fi.entries:
            text = (f"fi_info found no provider at all (fi_getinfo: -{fi.getinfo_error} in "
                    f"{fi.file}; if it ran with -p/-t filters, run plain fi_info)")
        else:
            text = (f"fi_info lists no {provider} provider ({fi.file} lists "
                    f"{_listing(fi.providers)})")
        return _Assessment(Usable.no, text, (fi.file,))

    hg = reports.hg_info
    if hg is not None and spec.effective_class:
        found = hg.find(spec.effective_class, spec.proto)
        if found:
            devices = _listing([p.device for p in found if p.device])
            return _Assessment(Usable.yes, f"hg_info lists {found[0].address} on {devices} "
                               f"({hg.file}); not confirmed by margo-info", (hg.file,))
        listed = _listing([p.address for p in hg.protocols])
        return _Assessment(Usable.no, f"hg_info lists no {spec.effective_class}+{spec.proto} "
                           f"protocol ({hg.file} lists {listed})", (hg.file,))

    fl = reports.fi_providers
    if fl is not None and provider:
        if provider in fl.names:
            return _Assessment(Usable.unknown, f"the {provider} provider is compiled into "
                               f"libfabric ({fl.file}), but fi_info -l does not check hardware",
                               (fl.file,))
        return _Assessment(Usable.no, f"libfabric is built without the {provider} provider "
                           f"(fi_info -l in {fl.file} lists {_listing(fl.names)})", (fl.file,))

    if reports.is_empty:
        return _Assessment(Usable.unknown, "no host report given: trusting the site profile")
    return _Assessment(Usable.unknown, "no host report covers it: trusting the site profile")


def _is_intra_node(t: Transport, spec: ProtocolSpec) -> bool:
    return t.scope == TransportScope.intra_node or spec.family in INTRA_NODE_FAMILIES


def diagnostic_commands(site: SiteProfile) -> list[str]:
    """What to run on a compute node to find out which transports work there (one process
    on one node, started by the site's launcher: ``Launcher.single_process_argv``)."""
    launcher = launcher_class(site.launcher.type)
    launch = shlex.join(launcher.single_process_argv(site))
    vni: tuple[str, ...] = ()
    if any(parse_protocol(t.protocol).family == "cxi" for t in site.transports):
        vni = launcher.cxi_vni_flags
    env = dict(launcher.cxi_vni_env) if vni else {}
    prefix = "".join(f"{k}={v} " for k, v in env.items())
    commands = [f"{prefix}{' '.join([launch, *vni])} margo-info > margo-info.txt 2>&1",
                f"{launch} fi_info -t FI_EP_RDM > fi_info.txt 2>&1"]
    families = {parse_protocol(t.protocol).family for t in site.transports}
    commands += [f"{launch} {_FAMILY_TOOL[f]}" for f in sorted(families) if f in _FAMILY_TOOL]
    commands.append(f"bedrock-deploy transports --site {site.name} --margo-info margo-info.txt "
                    "--fi-info fi_info.txt")
    return commands


def _choice_for(t: Transport, spec: ProtocolSpec, site: SiteProfile, reason: str,
                notes: list[str], reports: HostReports) -> TransportChoice:
    env = dict(t.env)
    flags = tuple(t.launcher_flags)
    mercury = dict(t.mercury)
    if spec.family == "cxi":
        # A CXI job needs a VNI from its launcher (the launcher's cxi_vni_flags/cxi_vni_env).
        launcher = launcher_class(site.launcher.type)
        if not flags:
            flags = launcher.cxi_vni_flags
            if flags:
                notes.append(f"CXI: added the VNI launcher flags {' '.join(flags)} "
                             f"({site.launcher.type})")
            else:
                notes.append(f"CXI: no VNI launcher flags known for "
                             f"{site.launcher.type}; margo takes the VNI from "
                             "SLINGSHOT_VNIS, which only the resource manager sets")
        for k, v in launcher.cxi_vni_env.items():
            env.setdefault(k, v)
        if "auth_key" in mercury:
            notes.append("CXI: mercury.auth_key is set; even \"\" disables the automatic job "
                         "VNI (rule cxi-no-auth-key): remove it unless the site needs it")
    if spec.family == "tcp" and reports.fi_info is not None:
        nics = [d for d in reports.fi_info.domains_for("tcp") if d != "lo"]
        if len(nics) > 1 and "FI_TCP_IFACE" not in env and "ip_subnet" not in mercury:
            notes.append(f"TCP: fi_info lists {_listing(nics)}; on multi-homed nodes set "
                         "FI_TCP_IFACE or mercury.ip_subnet (libfabric tcp can hang otherwise, "
                         "ofiwg/libfabric#12480)")
    if spec.layer:
        notes.append(f"{t.name}: protocol {t.protocol!r} normalised to {spec.normalized!r} "
                     f"(Mercury adds '{spec.layer}' itself; it shows only in runtime addresses)")
    fabrics = tuple(t.fabrics)
    if not fabrics and spec.effective_class == "ofi":
        fabrics = DEFAULT_FABRICS.get(spec.family, ())
    provider = t.provider or spec.ofi_provider
    return TransportChoice(name=t.name, protocol=spec.normalized, provider=provider,
                           fabrics=fabrics, env=env, launcher_flags=tuple(flags),
                           mercury=mercury, reason=reason)


def select_transport(site: SiteProfile, *, nodes: int, reports: HostReports | None = None,
                     prefer: str | None = None, site_file: str | None = None,
                     locate: Callable[[KeyPath], SourceLocation] | None = None
                     ) -> TransportSelection:
    """Choose the transport (module docstring gives the rule); InputError if none is usable.

    ``prefer``: name of a site transport to take instead of the ranked first (still checked);
    ``site_file``: the profile's file, for error messages; ``locate``: key path -> location in
    the profile (``LoadedSite.locate``), to point errors at the ``transports`` line.
    """
    where = locate(("transports",)) if locate is not None else None
    if nodes < 1:
        raise InputError(Problem(f"a service runs on at least 1 node, not {nodes}",
                                 path=("nodes",), file=site_file,
                                 hint="give the number of nodes the service spans"))
    reports = reports or HostReports()
    names = [t.name for t in site.transports]
    if prefer is not None and prefer not in names:
        raise InputError(Problem(f"the site has no transport named {prefer!r}",
                                 path=("transports",), file=site_file, location=where,
                                 hint="use one of: " + ", ".join(names)))

    specs = [parse_protocol(t.protocol) for t in site.transports]
    assessed = [_assess(spec, reports) for spec in specs]
    rejected: dict[int, str] = {}
    for i, (t, spec, a) in enumerate(zip(site.transports, specs, assessed, strict=True)):
        if a.usable == Usable.no:
            rejected[i] = a.reason
        elif nodes > 1 and _is_intra_node(t, spec):
            rejected[i] = (f"reaches only processes on one node ({spec.normalized} is "
                           f"intra-node) and the service spans {nodes} nodes; {a.reason}")

    def rank(i: int) -> tuple[int, int, int, int]:
        return (int(_is_intra_node(site.transports[i], specs[i])),
                int(assessed[i].usable == Usable.unknown), TIERS[specs[i].family], i)

    eligible = sorted((i for i in range(len(specs)) if i not in rejected), key=rank)
    if prefer is not None:
        wanted = names.index(prefer)
        eligible = [wanted] if wanted in eligible else []
    if not eligible:
        raise _nothing_usable(site, nodes, specs, assessed, rejected, prefer, site_file, where)

    best = eligible[0]
    verdicts = []
    for i, (t, spec, a) in enumerate(zip(site.transports, specs, assessed, strict=True)):
        if i == best:
            why = a.reason
            if prefer is not None:
                why = f"chosen by request (--transport {prefer}); {why}"
            else:
                why += f"; chosen: {_why_ahead(eligible, rank, names)}"
            reason = why
        elif i in rejected:
            reason = rejected[i]
        elif prefer is not None:
            reason = f"{_usable_word(a)}, but {names[best]} was requested; {a.reason}"
        else:
            reason = f"{_usable_word(a)}, but {_why_behind(i, best, rank, names)}; {a.reason}"
        verdicts.append(Verdict(candidate=t.name, protocol=spec.normalized, family=spec.family,
                                reported_usable=a.usable, chosen=i == best, reason=reason,
                                evidence=a.evidence, runtime_address=a.runtime_address))
    notes = list(reports.notes)
    if reports.is_empty:
        notes.append("no margo-info, fi_info or hg_info report given: the site profile is "
                     "trusted; check on a compute node with: "
                     + " ; ".join(diagnostic_commands(site)[:2]))
    choice = _choice_for(site.transports[best], specs[best], site, verdicts[best].reason,
                         notes, reports)
    return TransportSelection(choice=choice, verdicts=tuple(verdicts), nodes=nodes,
                              sources=reports.sources, trusted_profile=reports.is_empty,
                              notes=tuple(notes))


def _usable_word(a: _Assessment) -> str:
    return "usable" if a.usable == Usable.yes else "not ruled out"


def _why_ahead(eligible: list[int], rank: Any, names: list[str]) -> str:
    if len(eligible) == 1:
        return "the only usable candidate"
    best, runner = rank(eligible[0]), rank(eligible[1])
    other = names[eligible[1]]
    if best[0] != runner[0]:
        return f"it reaches other nodes and {other} does not"
    if best[1] != runner[1]:
        return f"confirmed by the host reports, {other} is not"
    if best[2] != runner[2]:
        return f"the fastest usable fabric ({TIER_ORDER_TEXT})"
    return f"as fast as {other} and listed before it in the site profile"


def _why_behind(i: int, best: int, rank: Any, names: list[str]) -> str:
    mine, theirs = rank(i), rank(best)
    b = names[best]
    if mine[0] != theirs[0]:
        return (f"it reaches one node only and {b} reaches other nodes too (pass "
                f"--transport {names[i]} to use it anyway)")
    if mine[1] != theirs[1]:
        return f"{b} is confirmed by the host reports and this one is not"
    if mine[2] != theirs[2]:
        return f"{b} is a faster fabric ({TIER_ORDER_TEXT})"
    return f"{b} is listed earlier in the site profile"


def _nothing_usable(site: SiteProfile, nodes: int, specs: list[ProtocolSpec],
                    assessed: list[_Assessment], rejected: dict[int, str],
                    prefer: str | None, site_file: str | None,
                    where: SourceLocation | None) -> InputError:
    lines = []
    for i, (t, spec) in enumerate(zip(site.transports, specs, strict=True)):
        why = rejected.get(i, f"usable ({assessed[i].reason}), but not the requested one")
        lines.append(f"  - {t.name} ({spec.normalized}): {why}")
    what = f"transport {prefer!r} is not usable" if prefer else "no usable transport"
    message = (f"{what} for a {nodes}-node service; the site's candidates:\n"
               + "\n".join(lines))
    hint = ("run these on a compute node (inside an allocation, with the service's launcher "
            "flags), then pass the files back:\n      "
            + "\n      ".join(diagnostic_commands(site)))
    return InputError(Problem(message, path=("transports",), file=site_file, location=where,
                              hint=hint))
