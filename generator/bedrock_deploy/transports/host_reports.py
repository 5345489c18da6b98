"""What a (compute) host reports about its network stack: margo-info, fi_info, hg_info.

Any subset may be present, or none (then selection trusts the site profile and says so).
Reports come from saved files (``from_files``), or from our embedded engine
(``from_engine``: ``bedrock-engine --info`` prints margo-info's format, parsed by the same parser
so local deployments go through the same selection path).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bedrock_deploy.diagnostics import InputError, Problem, fail
from bedrock_deploy.files import decode_report, read_input_bytes
from bedrock_deploy.limits import REPORT_BYTES
from bedrock_deploy.transports.fi_info import (
    FiInfoReport,
    FiProviderList,
    is_provider_list,
    parse_fi_info,
    parse_fi_info_list,
)
from bedrock_deploy.transports.hg_info import HgInfoReport, parse_hg_info
from bedrock_deploy.transports.margo_info import (
    MargoInfoReport,
    looks_like_json,
    parse_margo_info,
    parse_margo_info_json,
)
from bedrock_deploy.transports.report_text import strip_ansi

ENGINE_NAME = "bedrock-engine"
ENGINE_DIR_ENV = "BEDROCK_DEPLOY_ENGINE_DIR"  # read by bedrock_deploy.engine


def read_report(path: Path, what: str) -> str:
    """The text of a report file (at most ``max_report_bytes``); unreadable files are bad input,
    not tracebacks; a byte that is not UTF-8 becomes U+FFFD (tool outputs are read for a few
    words)."""
    try:
        data = read_input_bytes(path, REPORT_BYTES)
    except InputError as err:
        raise InputError([replace(
            p, message=p.message if p.location else f"cannot read the {what} file: {p.message}",
            hint=f"give the path of a file holding {what} output") for p in err.problems]
        ) from None
    return decode_report(data)


@dataclass(frozen=True)
class HostReports:
    margo_info: MargoInfoReport | None = None
    fi_info: FiInfoReport | None = None
    fi_providers: FiProviderList | None = None  # ``fi_info -l``
    hg_info: HgInfoReport | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.margo_info or self.fi_info or self.fi_providers or self.hg_info)

    @property
    def sources(self) -> tuple[str, ...]:
        reports = (self.margo_info, self.fi_info, self.fi_providers, self.hg_info)
        return tuple(r.file for r in reports if r is not None)

    @classmethod
    def from_files(cls, margo_info: Path | None = None, fi_info: Path | None = None,
                   hg_info: Path | None = None) -> HostReports:
        """Parse saved outputs. ``margo_info``: its stdout or its JSON file (if stdout names a
        JSON side file that exists here, its rows are used); ``fi_info``: full output or
        ``fi_info -l`` (told apart by content); ``hg_info``: table, CSV or JSON."""
        notes: list[str] = []
        margo = fi = providers = hg = None
        if margo_info is not None:
            margo = _load_margo_info(Path(margo_info), notes)
        if fi_info is not None:
            text = read_report(Path(fi_info), "fi_info")
            if is_provider_list(text):
                providers = parse_fi_info_list(text, str(fi_info))
            else:
                fi = parse_fi_info(text, str(fi_info))
        if hg_info is not None:
            hg = parse_hg_info(read_report(Path(hg_info), "hg_info"), str(hg_info))
        return cls(margo_info=margo, fi_info=fi, fi_providers=providers, hg_info=hg,
                   notes=tuple(notes))

    @classmethod
    def from_engine(cls, engine: str | Path | None = None, *,
                    timeout: float = 120.0) -> HostReports:
        """Run ``bedrock-engine --info`` (margo-info's format) and parse it like margo-info."""
        exe = find_engine(engine)
        label = f"{exe} --info"
        try:
            proc = subprocess.run([str(exe), "--info"], capture_output=True, text=True,
                                  errors="replace", timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise fail(f"'{label}' did not finish within {timeout:g} s", file=str(exe),
                       hint="run it by hand to see where it hangs") from None
        except OSError as err:
            raise fail(f"cannot run '{label}': {err.strerror}", file=str(exe),
                       hint="check that the engine is built and executable") from None
        # Like margo-info, it leaves its debug log and JSON results in /tmp and prints their
        # paths: we have read what we need from stdout, so remove them.
        remove_side_files(proc.stdout)
        # Like margo-info, the exit code says nothing: only the rows count.
        try:
            report = parse_margo_info(proc.stdout, label)
        except InputError as err:
            detail = proc.stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
            problems = [Problem(p.message, p.path, p.location,
                                f"{p.hint}; exit status {proc.returncode}, stderr: {detail[0]}",
                                p.file) for p in err.problems]
            raise InputError(problems) from None
        return cls(margo_info=report, notes=(f"probed by the embedded engine: {label}",))

    def unknown_line_notes(self, limit: int = 3) -> list[str]:
        """One note per report holding lines its parser did not recognise (kept, not fatal)."""
        notes = []
        for r in (self.margo_info, self.fi_info, self.fi_providers, self.hg_info):
            if r is not None and r.unknown_lines:
                shown = "; ".join(f"line {u.line}: {u.text.strip()!r}"
                                  for u in r.unknown_lines[:limit])
                more = len(r.unknown_lines) - limit
                notes.append(f"{r.file}: {len(r.unknown_lines)} unrecognised line(s) ignored "
                             f"({shown}{f'; and {more} more' if more > 0 else ''})")
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "margo_info": self.margo_info.to_dict() if self.margo_info else None,
            "fi_info": self.fi_info.to_dict() if self.fi_info else None,
            "fi_info_list": self.fi_providers.to_dict() if self.fi_providers else None,
            "hg_info": self.hg_info.to_dict() if self.hg_info else None,
            "notes": list(self.notes),
        }


# The side files margo-info (and bedrock-engine --info, which mimics it) creates with mkstemp.
_SIDE_FILE = re.compile(r"/tmp/margo-info-(?:stderr|json)-[A-Za-z0-9]{6}(?![A-Za-z0-9])")


def remove_side_files(stdout: str) -> list[str]:
    """Remove the temporary files a margo-info run we started names in its output (only those:
    regular files of ours with margo-info's mkstemp names); returns what was removed."""
    removed = []
    for path in dict.fromkeys(_SIDE_FILE.findall(strip_ansi(stdout))):
        p = Path(path)
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
                p.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def _load_margo_info(path: Path, notes: list[str]) -> MargoInfoReport:
    text = read_report(path, "margo-info")
    if looks_like_json(text):
        return parse_margo_info_json(text, str(path))
    report = parse_margo_info(text, str(path))
    side = Path(report.json_file) if report.json_file else None
    if side is not None and side.is_file():
        from_json = parse_margo_info_json(read_report(side, "margo-info JSON"), str(side))
        notes.append(f"margo-info rows read from its JSON file {side} (named in {path})")
        return MargoInfoReport(file=str(side), format="json", rows=from_json.rows,
                               host=report.host, json_file=report.json_file,
                               debug_log=report.debug_log, log_lines=report.log_lines,
                               unknown_lines=report.unknown_lines)
    return report


def find_engine(engine: str | Path | None = None) -> Path:
    """The embedded engine: ``engine`` if given, else where :mod:`bedrock_deploy.engine` finds it
    ($BEDROCK_DEPLOY_ENGINE_DIR, the environment's ``bin/``, PATH)."""
    from bedrock_deploy.engine import EngineNotFound, executable

    if engine is not None:
        path = Path(engine)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise fail(f"the engine {path} is not an executable file",
                   hint="give the path of bedrock-engine, or saved margo-info output instead "
                   "(--margo-info FILE)")
    try:
        return executable(ENGINE_NAME)
    except EngineNotFound as err:
        raise fail(f"the embedded engine '{ENGINE_NAME}' was not found: {err}",
                   hint="build and install the package (pip install .), set "
                   f"{ENGINE_DIR_ENV} to the directory holding {ENGINE_NAME}, or give saved "
                   "margo-info output instead (--margo-info FILE)") from None
