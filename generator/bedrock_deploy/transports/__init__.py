"""Transport selection driven by what hosts report (margo-info, fi_info, hg_info).

Parsers (one module per format, importable without side effects, used by ``probe`` too):
:func:`parse_margo_info`, :func:`parse_margo_info_json`, :func:`parse_fi_info`,
:func:`parse_fi_info_list`, :func:`parse_hg_info`. Selection: :func:`select_transport` returns a
:class:`TransportSelection` holding the :class:`~bedrock_deploy.plan.TransportChoice` and a
:class:`Verdict` per candidate; :class:`HostReports` gathers the reports.
"""

from bedrock_deploy.transports.fi_info import (
    FiInfoEntry,
    FiInfoReport,
    FiProviderList,
    parse_fi_info,
    parse_fi_info_list,
)
from bedrock_deploy.transports.hg_info import HgInfoReport, HgProtocol, parse_hg_info
from bedrock_deploy.transports.host_reports import HostReports, find_engine
from bedrock_deploy.transports.margo_info import (
    MargoInfoReport,
    MargoInfoRow,
    parse_margo_info,
    parse_margo_info_json,
)
from bedrock_deploy.transports.protocols import ProtocolSpec, parse_protocol
from bedrock_deploy.transports.report_text import UnknownLine
from bedrock_deploy.transports.selection import (
    TransportSelection,
    Usable,
    Verdict,
    diagnostic_commands,
    select_transport,
)

__all__ = [
    "FiInfoEntry",
    "FiInfoReport",
    "FiProviderList",
    "HgInfoReport",
    "HgProtocol",
    "HostReports",
    "MargoInfoReport",
    "MargoInfoRow",
    "ProtocolSpec",
    "TransportSelection",
    "UnknownLine",
    "Usable",
    "Verdict",
    "diagnostic_commands",
    "find_engine",
    "parse_fi_info",
    "parse_fi_info_list",
    "parse_hg_info",
    "parse_margo_info",
    "parse_margo_info_json",
    "parse_protocol",
    "select_transport",
]
