"""Parser for ``margo-info`` output: its stdout table and its JSON side file.

Format (https://github.com/mochi-hpc/mochi-margo/blob/v0.24.0/src/margo-info.c; the real output
of this kind of machine is in tests/data/transports/, see docs/platform-notes.md):
a ``#`` frame, then per probed address a ``### <description> ###`` line followed by the row
``addr<TAB>xport<TAB>proto<TAB>YES|NO<TAB>example-runtime-address`` coloured green (YES) or red
(NO), YES rows first; then notes and the paths of the debug log and of the JSON results file
(printed after ``# - results in JSON format:``). The JSON file is an array of
``{"index","addr","xport","proto","desc","result","example_runtime_addr"}``.

margo-info exits 0 even when every transport fails: its exit code means nothing, only the rows do.
Docs render the tabs as spaces, so a row is split on any whitespace (no field contains blanks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.json_source import parse_json
from bedrock_deploy.transports.report_text import UnknownLine, numbered_lines, parse_error

_ADDRESS = re.compile(r"^[A-Za-z0-9+;_.-]+://\S*$")
_DESCRIPTION = re.compile(r"^###\s+(.*?)\s+###$")
_HOST = re.compile(r"^#\s*Available Margo \(Mercury\) network transports on host\s+(\S+)")
_LOG = re.compile(r"^(#\s*)?\[[0-9.]+\]\s|^\[(error|warning|debug|info|trace|critical)\]\s")
_NOT_AVAILABLE = ("N/A", "UNKNOWN", "")

SAVE_HINT = ("save the whole output on a compute node: 'margo-info > margo-info.txt 2>&1' (under "
             "the service's launcher), or pass the JSON file whose path it prints after "
             "'results in JSON format:'")


@dataclass(frozen=True)
class MargoInfoRow:
    """One probed address: could margo initialise it, and what address it got."""

    addr: str  # the address specifier margo-info tried, e.g. "ofi+tcp://" (what we pass on)
    xport: str  # Mercury NA class ("ofi", "na", "ucx", "<any>", ...)
    proto: str  # protocol ("tcp", "cxi", "sm", ...; "shm" for ofi+sockets, sic)
    usable: bool  # YES / "result": true
    example_address: str | None  # runtime address margo got, e.g. "ofi+tcp;ofi_rxm://ip:port"
    description: str | None
    line: int

    @property
    def runtime_prefix(self) -> str | None:
        """Scheme of the runtime address (``ofi+tcp;ofi_rxm://``): what comes back at run time."""
        if self.example_address and "://" in self.example_address:
            return self.example_address.split("://", 1)[0] + "://"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"addr": self.addr, "xport": self.xport, "proto": self.proto,
                "usable": self.usable, "example_address": self.example_address,
                "description": self.description, "line": self.line}


@dataclass(frozen=True)
class MargoInfoReport:
    file: str
    format: str  # "stdout" or "json"
    rows: tuple[MargoInfoRow, ...]
    host: str | None = None
    json_file: str | None = None  # the side file named in stdout
    debug_log: str | None = None
    log_lines: tuple[UnknownLine, ...] = ()  # Mercury/Margo log lines mixed into stdout
    unknown_lines: tuple[UnknownLine, ...] = field(default_factory=tuple)

    def row_for(self, addr: str) -> MargoInfoRow | None:
        for row in self.rows:
            if row.addr == addr:
                return row
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "host": self.host,
                "json_file": self.json_file, "debug_log": self.debug_log,
                "rows": [r.to_dict() for r in self.rows],
                "unknown_lines": [u.to_dict() for u in self.unknown_lines]}


def _example(value: str | None) -> str | None:
    if value is None or value.strip() in _NOT_AVAILABLE:
        return None
    return value.strip()


def parse_margo_info(text: str, file: str) -> MargoInfoReport:
    """Parse margo-info's stdout (colour codes and merged stderr allowed)."""
    rows: list[MargoInfoRow] = []
    unknown: list[UnknownLine] = []
    logs: list[UnknownLine] = []
    host = json_file = debug_log = None
    pending: tuple[int, str] | None = None  # a "### desc ###" line waiting for its row
    expect_path: str | None = None  # "json" / "log" after the line announcing that path

    def missing_row(at: tuple[int, str]) -> Exception:
        return parse_error(
            f"the description line '### {at[1]} ###' has no result row after it: "
            "the output is truncated or edited",
            file=file, line=at[0], hint=SAVE_HINT)

    for number, line in numbered_lines(text):
        stripped = line.strip()
        if expect_path is not None:
            path = stripped.lstrip("#").strip()
            if stripped.startswith("#") and path.startswith("/"):
                if expect_path == "json":
                    json_file = path
                else:
                    debug_log = path
                expect_path = None
                continue
            expect_path = None
        if not stripped:
            continue
        desc = _DESCRIPTION.match(stripped)
        if desc:
            if pending is not None:
                raise missing_row(pending)
            pending = (number, desc.group(1))
            continue
        if _LOG.match(stripped):
            logs.append(UnknownLine(number, line))
            continue
        if stripped.startswith("#"):
            host_match = _HOST.match(stripped)
            if host_match:
                host = host_match.group(1)
            elif "results in JSON format" in stripped:
                expect_path = "json"
            elif "debug log output" in stripped:
                expect_path = "log"
            continue  # the frame, notes and hints: recognised, nothing to keep
        fields = stripped.split()
        # a bare address is a list item (usage text, "not supported" list), not a result row
        if _ADDRESS.match(fields[0]) and len(fields) > 1:
            rows.append(_row(fields, number, line, pending[1] if pending else None, file))
            pending = None
            continue
        unknown.append(UnknownLine(number, line))
    if pending is not None:
        raise missing_row(pending)
    if not rows:
        last = max(1, sum(1 for _ in numbered_lines(text)))
        raise parse_error(
            "no transport rows found: this is not margo-info output, or it stops before the "
            "table (margo-info prints it only after probing every address)",
            file=file, line=last, hint=SAVE_HINT)
    return MargoInfoReport(file=file, format="stdout", rows=tuple(rows), host=host,
                           json_file=json_file, debug_log=debug_log, log_lines=tuple(logs),
                           unknown_lines=tuple(unknown))


def _row(fields: list[str], number: int, line: str, description: str | None,
         file: str) -> MargoInfoRow:
    if len(fields) >= 5 and fields[3] in ("YES", "NO"):
        addr, xport, proto, result = fields[:4]
        return MargoInfoRow(addr=addr, xport=xport, proto=proto, usable=result == "YES",
                            example_address=_example(" ".join(fields[4:])),
                            description=description, line=number)
    # the single-address form: "<x>\tYES\truntime address: <addr>" or "<x>\tNO"
    if len(fields) >= 2 and fields[1] in ("YES", "NO"):
        example = None
        if "runtime address:" in line:
            example = _example(line.split("runtime address:", 1)[1])
        scheme = fields[0].split("://", 1)[0]
        xport, _, proto = scheme.rpartition("+")
        return MargoInfoRow(addr=fields[0], xport=xport or "<any>", proto=proto,
                            usable=fields[1] == "YES", example_address=example,
                            description=description, line=number)
    column = line.find(fields[0]) + 1
    raise parse_error(
        f"malformed margo-info row {line.strip()!r}: expected 5 fields (address, transport, "
        f"protocol, YES or NO, example runtime address), found {len(fields)}",
        file=file, line=number, column=column,
        hint="the line is cut short or edited; " + SAVE_HINT)


_ROW_KEYS: dict[str, type] = {
    "addr": str, "xport": str, "proto": str, "result": bool, "example_runtime_addr": str,
}


def parse_margo_info_json(text: str, file: str) -> MargoInfoReport:
    """Parse the JSON results file margo-info writes (``/tmp/margo-info-json-XXXXXX``)."""
    try:
        doc = parse_json(text, file)
    except InputError as err:
        raise InputError([replace(p, hint=f"the file is truncated or not margo-info's JSON "
                                  f"output; {SAVE_HINT}") for p in err.problems]) from None
    document = doc.data
    if not isinstance(document, list):
        raise parse_error("margo-info JSON is an array of results; this is a "
                          f"{type(document).__name__}", file=file, line=1, hint=SAVE_HINT)
    if not document:
        raise parse_error("margo-info JSON holds no results", file=file, line=1, hint=SAVE_HINT)
    rows = []
    for i, element in enumerate(document):
        where = doc.locate((i,))
        line, column = where.line, where.column
        if not isinstance(element, dict):
            raise parse_error(f"result [{i}] is a {type(element).__name__}, not an object",
                              file=file, line=line, column=column, hint=SAVE_HINT)
        for key, kind in _ROW_KEYS.items():
            if not isinstance(element.get(key), kind):
                what = "missing" if key not in element else f"not a {kind.__name__}"
                at = doc.locate((i, key)) if key in element else where
                raise parse_error(f"result [{i}]: key {key!r} is {what}", file=file,
                                  line=at.line, column=at.column, hint=SAVE_HINT)
        desc = element.get("desc")
        rows.append(MargoInfoRow(
            addr=element["addr"], xport=element["xport"], proto=element["proto"],
            usable=element["result"], example_address=_example(element["example_runtime_addr"]),
            description=desc if isinstance(desc, str) else None, line=line))
    return MargoInfoReport(file=file, format="json", rows=tuple(rows))


def looks_like_json(text: str) -> bool:
    return text.lstrip().startswith(("[", "{"))
