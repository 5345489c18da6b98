"""Parser for Mercury's ``hg_info`` (``mercury:util/hg_info/info.c``, Mercury >= 2.3).

``hg_info [-c|--csv] [-j|--json] [-s|--silent] [<class+protocol>]`` lists the class, protocol and
device of each NA protocol ``HG_Get_na_protocol_info`` finds; it initialises nothing. Unless
``-s``, a ``# Retrieving protocol info for ...`` line comes first. Three output forms:

* std: a dashed header ``Class  Protocol  Device`` then ``%-10s%20s%20s`` rows;
* CSV (``-c``): ``class,protocol,device`` header then rows;
* JSON (``-j``): ``{"protocols": [{"class", "protocol", "device"}, ...]}``.

``No protocol found for "<x>"`` (stderr, exit 1) means Mercury knows no such protocol.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from typing import Any

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.json_source import parse_json
from bedrock_deploy.transports.report_text import UnknownLine, numbered_lines, parse_error

_NOT_FOUND = re.compile(r'^No protocol found for "(.*)"')
_STD_PROTOCOL_END = 30  # std rows are "%-10s%20s%20s": the protocol column ends at 30
SAVE_HINT = ("save the whole output on a compute node: 'hg_info -c > hg_info.csv 2>&1' "
             "(or -j for JSON, or no option for the table)")


@dataclass(frozen=True)
class HgProtocol:
    na_class: str  # "ofi", "na", "ucx", ...
    protocol: str  # "tcp", "cxi", "verbs", "sm", ...
    device: str  # "eth0", "cxi0", "mlx5_0", ...
    line: int

    @property
    def address(self) -> str:
        """The margo-info style address specifier: ``ofi+tcp://``."""
        return f"{self.na_class}+{self.protocol}://"

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.na_class, "protocol": self.protocol, "device": self.device,
                "line": self.line}


@dataclass(frozen=True)
class HgInfoReport:
    file: str
    format: str  # "std", "csv" or "json"
    protocols: tuple[HgProtocol, ...]
    not_found: str | None = None  # the specifier of 'No protocol found for "<x>"'
    unknown_lines: tuple[UnknownLine, ...] = field(default_factory=tuple)

    def find(self, na_class: str | None, protocol: str) -> tuple[HgProtocol, ...]:
        return tuple(p for p in self.protocols if p.protocol == protocol
                     and (na_class is None or p.na_class == na_class))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "not_found": self.not_found,
                "protocols": [p.to_dict() for p in self.protocols],
                "unknown_lines": [u.to_dict() for u in self.unknown_lines]}


def parse_hg_info(text: str, file: str) -> HgInfoReport:
    """Parse any of hg_info's three output forms (detected from the text)."""
    lines = list(numbered_lines(text))
    body = [(n, s) for n, s in lines if s.strip() and not s.lstrip().startswith("#")]
    not_found = None
    unknown: list[UnknownLine] = []
    for n, s in list(body):
        m = _NOT_FOUND.match(s.strip())
        if m:
            not_found = m.group(1)
            body.remove((n, s))
        elif s.strip().startswith(("HG_Get_protocol_info()", "usage:")):
            unknown.append(UnknownLine(n, s))
            body.remove((n, s))
    if not body:
        if not_found is not None:
            return HgInfoReport(file=file, format="std", protocols=(), not_found=not_found,
                                unknown_lines=tuple(unknown))
        raise parse_error("no hg_info output found (no table, CSV or JSON)", file=file,
                          line=max(1, len(lines)), hint=SAVE_HINT)
    first_line, first = body[0]
    if first.lstrip().startswith("{"):
        return _parse_json(text, file, first_line, not_found, unknown)
    if first.strip().replace(" ", "").lower() == "class,protocol,device":
        return _parse_csv(body[1:], file, not_found, unknown)
    return _parse_std(body, file, not_found, unknown)


def _parse_json(text: str, file: str, first_line: int, not_found: str | None,
                unknown: list[UnknownLine]) -> HgInfoReport:
    start = 0
    for _ in range(first_line - 1):
        start = text.index("\n", start) + 1
    start = text.index("{", start)
    # blank out what comes before the JSON, keeping every line and column where it is
    masked = re.sub(r"[^\n]", " ", text[:start]) + text[start:]
    try:
        doc = parse_json(masked, file)
    except InputError as err:
        raise InputError([replace(p, hint="the file is truncated; " + SAVE_HINT)
                          for p in err.problems]) from None
    document = doc.data
    items = document.get("protocols") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise parse_error("hg_info JSON has no 'protocols' array", file=file, line=first_line,
                          hint=SAVE_HINT)
    protocols = []
    for i, item in enumerate(items):
        where = doc.locate(("protocols", i))
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) for k in ("class", "protocol", "device")):
            raise parse_error(f"protocols[{i}] needs string 'class', 'protocol' and 'device'",
                              file=file, line=where.line, column=where.column, hint=SAVE_HINT)
        protocols.append(HgProtocol(item["class"], item["protocol"], item["device"],
                                    where.line))
    return HgInfoReport(file=file, format="json", protocols=tuple(protocols),
                        not_found=not_found, unknown_lines=tuple(unknown))


def _parse_csv(rows: list[tuple[int, str]], file: str, not_found: str | None,
               unknown: list[UnknownLine]) -> HgInfoReport:
    protocols = []
    for number, line in rows:
        try:
            fields = next(csv.reader(io.StringIO(line, newline="")))
        except csv.Error as err:
            raise parse_error(f"unreadable CSV row: {err}", file=file, line=number,
                              hint=SAVE_HINT) from None
        if len(fields) != 3 or not (fields[0].strip() and fields[1].strip()):
            raise parse_error(f"expected 3 CSV fields (class,protocol,device), found "
                              f"{len(fields)}: {line.strip()!r}", file=file, line=number,
                              hint="the file is truncated or edited; " + SAVE_HINT)
        protocols.append(HgProtocol(*(f.strip() for f in fields), line=number))
    return HgInfoReport(file=file, format="csv", protocols=tuple(protocols),
                        not_found=not_found, unknown_lines=tuple(unknown))


def _parse_std(rows: list[tuple[int, str]], file: str, not_found: str | None,
               unknown: list[UnknownLine]) -> HgInfoReport:
    protocols = []
    in_table = False
    for number, line in rows:
        stripped = line.strip()
        if set(stripped) == {"-"}:
            continue
        fields = stripped.split()
        if [f.lower() for f in fields] == ["class", "protocol", "device"]:
            in_table = True
            continue
        if not in_table:
            unknown.append(UnknownLine(number, line))
            continue
        if len(fields) == 2 and line.find(fields[1]) + len(fields[1]) == _STD_PROTOCOL_END:
            fields.append("")  # "%-10s%20s%20s" with an empty device name
        if len(fields) != 3:
            raise parse_error(f"expected 3 columns (class, protocol, device), found "
                              f"{len(fields)}: {stripped!r}", file=file, line=number,
                              hint="the file is truncated or edited; " + SAVE_HINT)
        protocols.append(HgProtocol(*fields, line=number))
    if not in_table:
        raise parse_error("no hg_info table header ('Class  Protocol  Device') found",
                          file=file, line=rows[0][0], hint=SAVE_HINT)
    return HgInfoReport(file=file, format="std", protocols=tuple(protocols),
                        not_found=not_found, unknown_lines=tuple(unknown))
