"""Parsers of margo-info, fi_info and hg_info over recorded outputs (tests/data/transports/)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_deploy.diagnostics import InputError
from bedrock_deploy.transports import (
    HostReports,
    parse_fi_info,
    parse_fi_info_list,
    parse_hg_info,
    parse_margo_info,
    parse_margo_info_json,
)

DATA = Path(__file__).parent / "data" / "transports"


def text(name: str) -> str:
    return (DATA / name).read_text()


def only_problem(err: pytest.ExceptionInfo[InputError]):
    assert len(err.value.problems) == 1
    return err.value.problems[0]


# --- margo-info -----------------------------------------------------------------------------

def test_margo_info_doc_sample_spaces_and_elisions() -> None:
    report = parse_margo_info(text("mochi-doc-hello-mochi.margo-info.txt"), "doc")
    assert report.host == "carns-x1-7g"
    assert [(r.addr, r.usable) for r in report.rows] == [
        ("ofi+tcp://", True), ("ofi+sockets://", True), ("na+sm://", True), ("tcp://", True),
        ("sm://", True), ("ofi+verbs://", False), ("ofi+cxi://", False), ("psm2://", False)]
    tcp = report.row_for("ofi+tcp://")
    assert tcp is not None
    assert tcp.example_address == "ofi+tcp;ofi_rxm://192.168.122.1:37557"
    assert tcp.runtime_prefix == "ofi+tcp;ofi_rxm://"
    assert tcp.description == "libfabric tcp provider (TCP/IP)"
    assert report.row_for("ofi+cxi://").example_address is None  # "N/A"
    assert report.json_file == "/tmp/margo-info-json-rKsotr"
    assert report.debug_log == "/tmp/margo-info-stderr-aTujCI"
    # the doc elides parts with "..." lines: kept, with their line numbers
    assert [(u.line, u.text) for u in report.unknown_lines] == [(29, "..."), (36, "...")]


def test_margo_info_real_vm_output_with_merged_stderr() -> None:
    report = parse_margo_info(text("debian12-vm.margo-info.txt"), "vm.txt")
    assert report.host == "vm"
    assert len(report.rows) == 21  # every address of MARGO_KNOWN_HG_PLUGINS
    assert {r.addr for r in report.rows if r.usable} == {
        "ofi+tcp://", "ofi+shm://", "ofi+sockets://", "na+sm://", "tcp://", "sm://"}
    sockets = report.row_for("ofi+sockets://")
    assert sockets is not None and sockets.proto == "shm"  # margo-info quirk, kept as printed
    assert report.row_for("ofi+tcp://").line == 14
    assert len(report.log_lines) == 3  # the mercury warnings stderr put before the table
    # the shell's "time" output after the table: not margo-info's, kept as unknown lines
    assert [(u.line, u.text) for u in report.unknown_lines] == [
        (88, "user\t0m0.040s"), (89, "sys\t0m0.236s")]
    assert report.json_file == "/tmp/margo-info-json-5UHVqm"


def test_margo_info_ansi_colours_are_stripped_and_give_the_same_rows() -> None:
    plain = parse_margo_info(text("debian12-vm.margo-info.txt"), "plain")
    coloured_text = text("debian12-vm.margo-info.ansi.txt")
    assert "\x1b[32m" in coloured_text and "\x1b[0m###" in coloured_text
    coloured = parse_margo_info(coloured_text, "ansi")
    assert coloured.rows == plain.rows
    assert coloured.host == "vm"
    assert coloured.json_file == plain.json_file


def test_margo_info_single_address_form() -> None:
    report = parse_margo_info(text("debian12-vm.margo-info-na-sm.txt"), "one")
    assert [(r.addr, r.usable, r.example_address) for r in report.rows] == [
        ("na+sm://", True, "na+sm://24001-0")]
    legacy = parse_margo_info("ofi+verbs://\tNO\nna+sm://\tYES\truntime address: na+sm://7-0\n",
                              "legacy")
    assert [(r.addr, r.usable, r.example_address) for r in legacy.rows] == [
        ("ofi+verbs://", False, None), ("na+sm://", True, "na+sm://7-0")]


def test_margo_info_json_side_file() -> None:
    report = parse_margo_info_json(text("debian12-vm.margo-info.json"), "vm.json")
    assert [(r.addr, r.usable, r.line) for r in report.rows] == [
        ("ofi+tcp://", True, 2), ("ofi+verbs://", False, 11), ("ofi+shm://", True, 20),
        ("ofi+sockets://", True, 29)]
    assert report.rows[0].example_address == "ofi+tcp;ofi_rxm://192.0.2.2:41661"
    assert report.rows[1].example_address is None


def test_margo_info_file_loader_tells_json_from_stdout(tmp_path: Path) -> None:
    from_json = HostReports.from_files(margo_info=DATA / "debian12-vm.margo-info.json")
    assert from_json.margo_info is not None and from_json.margo_info.format == "json"
    # stdout naming a JSON side file that exists here: its rows are used
    side = tmp_path / "margo-info-json-abc"
    side.write_text(text("debian12-vm.margo-info.json"))
    stdout = tmp_path / "out.txt"
    stdout.write_text(text("debian12-vm.margo-info.txt").replace(
        "/tmp/margo-info-json-5UHVqm", str(side)))
    reports = HostReports.from_files(margo_info=stdout)
    assert reports.margo_info is not None
    assert reports.margo_info.file == str(side)
    assert len(reports.margo_info.rows) == 4 and reports.margo_info.host == "vm"
    assert any("JSON file" in n for n in reports.notes)


def test_margo_info_truncated_row_names_file_and_line() -> None:
    cut = text("debian12-vm.margo-info.txt").split("\n")
    cut[15] = "ofi+shm://\tofi\tsh"  # line 16, cut short
    with pytest.raises(InputError) as err:
        parse_margo_info("\n".join(cut), "cut.txt")
    p = only_problem(err)
    assert (p.location.file, p.location.line) == ("cut.txt", 16)
    assert "expected 5 fields" in p.message and "found 3" in p.message


def test_margo_info_truncated_after_a_description_line() -> None:
    lines = text("debian12-vm.margo-info.txt").split("\n")[:17]  # ends on "### ... ###"
    with pytest.raises(InputError) as err:
        parse_margo_info("\n".join(lines), "head.txt")
    p = only_problem(err)
    assert p.location.line == 17 and "has no result row" in p.message


def test_margo_info_usage_text_is_not_a_table() -> None:
    usage = ("Usage: margo-info [address specifier] [-l]\n"
             "   Run with no arguments to query available protocols.\n"
             "      ofi+tcp://\n      na+sm://\n")
    with pytest.raises(InputError) as err:
        parse_margo_info(usage, "usage.txt")
    assert "no transport rows" in only_problem(err).message


def test_margo_info_without_rows_is_an_error() -> None:
    with pytest.raises(InputError) as err:
        parse_margo_info(text("debian12-vm.fi_info.txt"), "wrong.txt")
    assert "no transport rows" in only_problem(err).message


def test_margo_info_json_truncated_and_wrong_shape() -> None:
    full = text("debian12-vm.margo-info.json")
    with pytest.raises(InputError) as err:
        parse_margo_info_json(full[:300], "cut.json")
    p = only_problem(err)
    assert p.location.file == "cut.json" and p.location.line > 1
    assert p.message.startswith("invalid JSON")
    with pytest.raises(InputError) as err:
        parse_margo_info_json(full.replace('"result": false', '"result": "no"'), "bad.json")
    p = only_problem(err)
    # at the key itself (line 17), inside result [1] (which starts on line 11)
    assert p.location.line == 17 and "'result' is not a bool" in p.message
    with pytest.raises(InputError):
        parse_margo_info_json('{"protocols": []}', "obj.json")


# --- fi_info --------------------------------------------------------------------------------

def test_fi_info_real_full_output_of_this_machine() -> None:
    report = parse_fi_info(text("debian12-vm.fi_info.txt"), "fi_info.txt")
    assert report.format == "short"
    assert len(report.entries) == 97  # 582 lines, 97 entries (docs/platform-notes.md)
    counts = Counter(e.provider for e in report.entries)
    assert counts == {"tcp;ofi_rxm": 25, "tcp": 10, "net;ofi_rxm": 20, "net": 15,
                      "sockets": 15, "udp": 5, "udp;ofi_rxd": 5, "shm": 2}
    first = report.entries[0]
    assert (first.provider, first.fabric, first.domain, first.ep_type, first.protocol) == (
        "tcp;ofi_rxm", "192.0.2.0/24", "eth0", "FI_EP_RDM", "FI_PROTO_RXM")
    assert report.domains_for("tcp") == ("eth0", "lo")
    assert report.fabrics_for("tcp") == ("192.0.2.0/24", "fe80::/64", "fd00::/64",
                                         "127.0.0.1/32", "::1/128")
    assert report.ep_types_for("tcp") == ("FI_EP_RDM", "FI_EP_MSG")
    assert set(report.ep_types_for("sockets")) == {"FI_EP_MSG", "FI_EP_DGRAM", "FI_EP_RDM"}
    assert report.entries_for("verbs") == ()
    assert report.unknown_lines == ()


def test_fi_info_filtered_outputs() -> None:
    tcp = parse_fi_info(text("debian12-vm.fi_info-p-tcp.txt"), "p-tcp")
    assert len(tcp.entries) == 25  # tcp MSG + tcp;ofi_rxm RDM
    assert {e.core_provider for e in tcp.entries} == {"tcp"}
    rdm = parse_fi_info(text("debian12-vm.fi_info-t-rdm.txt"), "t-rdm")
    assert {e.ep_type for e in rdm.entries} == {"FI_EP_RDM"}
    verbs = parse_fi_info(text("debian12-vm.fi_info-p-verbs.txt"), "p-verbs")
    assert verbs.entries == () and verbs.getinfo_error == 61


def test_fi_info_verbose_form() -> None:
    report = parse_fi_info(text("debian12-vm.fi_info-v-p-shm.txt"), "v-shm")
    assert report.format == "verbose"
    assert [(e.provider, e.fabric, e.domain, e.ep_type, e.protocol, e.version)
            for e in report.entries] == [("shm", "shm", "shm", "FI_EP_RDM", "FI_PROTO_SHM",
                                          "117.0")] * 2
    assert report.entries[1].line > report.entries[0].line


def test_fi_info_stderr_glued_to_last_line() -> None:
    # stdout's last line has no newline, so "2>&1" glues fi_getinfo's message onto it
    glued = text("debian12-vm.fi_info-p-tcp.txt").rstrip("\n") + "fi_getinfo: -61\n"
    report = parse_fi_info(glued, "glued")
    assert len(report.entries) == 25 and report.getinfo_error == 61
    assert report.entries[-1].protocol == "FI_PROTO_SOCK_TCP"


def test_fi_info_public_samples() -> None:
    ss = parse_fi_info(text("slingshot-node.fi_info.txt"), "ss")
    assert ss.domains_for("cxi") == ("cxi0", "cxi1", "cxi2", "cxi3")
    ib = parse_fi_info(text("infiniband-node.fi_info.txt"), "ib")
    assert ib.domains_for("verbs") == ("mlx5_0",)
    assert {e.provider for e in ib.entries_for("verbs")} == {"verbs;ofi_rxm", "verbs"}


def test_fi_info_unknown_lines_are_kept() -> None:
    sample = "provider: cxi\n    fabric: cxi\n    [...]\n    type: FI_EP_RDM\n"
    report = parse_fi_info(sample, "charliecloud")
    assert report.entries[0].ep_type == "FI_EP_RDM"
    assert [(u.line, u.text.strip()) for u in report.unknown_lines] == [(3, "[...]")]


@pytest.mark.parametrize(("sample", "line", "words"), [
    ("provider: tcp\n    fabric: 10.0.0.0/8\nprovider: cxi\n", 3, "no attributes"),
    ("provider: tcp\n    fabric:\n", 2, "has no value"),
    ("", 1, "no fi_info entries"),
    ("hello\n", 1, "no fi_info entries"),
])
def test_fi_info_truncated(sample: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as err:
        parse_fi_info(sample, "t.txt")
    p = only_problem(err)
    assert p.location.line == line and words in p.message


def test_fi_info_list_real_and_truncated() -> None:
    providers = parse_fi_info_list(text("debian12-vm.fi_info-l.txt"), "l")
    assert providers.names[:3] == ("psm2", "psm", "ofi_rxm") and len(providers.names) == 15
    assert dict(providers.providers)["tcp"] == "117.0"
    cut = text("debian12-vm.fi_info-l.txt").split("\n")[:13]  # ends on "tcp:"
    with pytest.raises(InputError) as err:
        parse_fi_info_list("\n".join(cut), "cut-l")
    p = only_problem(err)
    assert p.location.line == 13 and "'tcp' has no version" in p.message


def test_fi_info_loader_tells_list_from_full() -> None:
    assert HostReports.from_files(fi_info=DATA / "debian12-vm.fi_info-l.txt").fi_providers
    assert HostReports.from_files(fi_info=DATA / "debian12-vm.fi_info.txt").fi_info


# --- hg_info --------------------------------------------------------------------------------

def test_hg_info_std_table_from_daos() -> None:
    report = parse_hg_info(text("daos-pr12713.hg_info.txt"), "daos")
    assert report.format == "std"
    assert [(p.na_class, p.protocol, p.device) for p in report.protocols] == [
        ("ofi", "sockets", "eth0"), ("ofi", "shm", "shm")]


def test_hg_info_csv_and_json_agree() -> None:
    csv = parse_hg_info(text("slingshot-node.hg_info.csv"), "csv")
    js = parse_hg_info(text("slingshot-node.hg_info.json"), "json")
    assert (csv.format, js.format) == ("csv", "json")
    assert [p.device for p in csv.find("ofi", "cxi")] == ["cxi0", "cxi1", "cxi2", "cxi3"]
    assert [p.device for p in js.find("ofi", "cxi")] == ["cxi0", "cxi1", "cxi2", "cxi3"]
    assert csv.find("na", "sm")[0].device == ""
    assert csv.protocols[0].line == 3


def test_hg_info_std_with_empty_device_and_not_found() -> None:
    row = f"{'na':<10}{'sm':>20}{'':>20}"
    table = "-" * 50 + f"\n{'Class':<10}{'Protocol':>20}{'Device':>20}\n" + "-" * 50 + "\n"
    report = parse_hg_info(table + row + "\n", "std")
    assert [(p.na_class, p.protocol, p.device) for p in report.protocols] == [("na", "sm", "")]
    missing = parse_hg_info('# Retrieving protocol info for "foo"...\n'
                            'No protocol found for "foo"\n', "nf")
    assert missing.protocols == () and missing.not_found == "foo"


def test_hg_info_truncated() -> None:
    with pytest.raises(InputError) as err:
        parse_hg_info("class,protocol,device\nofi,cxi,cxi0\nofi,tc", "cut.csv")
    assert only_problem(err).location.line == 3
    cut_json = text("slingshot-node.hg_info.json")[:120]
    with pytest.raises(InputError) as err:
        parse_hg_info(cut_json, "cut.json")
    p = only_problem(err)
    assert p.location.file == "cut.json" and "invalid JSON" in p.message


def test_odd_line_breaks_are_bad_input_not_crashes() -> None:
    # found by fuzzing: a bare "\r" inside a CSV row made the csv module raise
    with pytest.raises(InputError) as err:
        parse_hg_info("class,protocol,device\nna,\rsm,\n", "cr.csv")
    assert only_problem(err).location.line == 2
    # "\x0b" is a line break for str.splitlines but not for editors: line numbers count "\n"
    with pytest.raises(InputError) as err:
        parse_hg_info("\x0b{\n", "vt.json")
    assert only_problem(err).location.file == "vt.json"


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        HostReports.from_files(fi_info=tmp_path / "nope.txt")
    p = only_problem(err)
    assert p.file == str(tmp_path / "nope.txt") and "cannot read" in p.message


# --- robustness: every parser returns a result or raises InputError, nothing else -----------

PARSERS = [parse_margo_info, parse_margo_info_json, parse_fi_info, parse_fi_info_list,
           parse_hg_info]
SAMPLES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".txt", ".json", ".csv"))
ALPHABET = st.sampled_from(list("\t\n :;,+/#-[]{}\"'0123456789abcfinoprstvxyYESNO\x1b"))


def _only_result_or_input_error(parser, data: str) -> None:
    try:
        parser(data, "fuzz")
    except InputError as err:
        assert err.problems and all(p.message for p in err.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(SAMPLES), cut=st.integers(min_value=0, max_value=40000),
       parser=st.sampled_from(PARSERS))
def test_truncated_recorded_outputs_never_crash(name: str, cut: int, parser) -> None:
    data = text(name)
    _only_result_or_input_error(parser, data[: cut % (len(data) + 1)])


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.text(max_size=400), st.text(ALPHABET, max_size=400)),
       parser=st.sampled_from(PARSERS))
def test_random_text_never_crashes(data: str, parser) -> None:
    _only_result_or_input_error(parser, data)


def test_embedded_engine_info_parses_like_margo_info() -> None:
    # real `bedrock-engine --info` output of our engine on this machine (native/src/info.cpp)
    report = parse_margo_info(text("debian12-vm.bedrock-engine-info.txt"), "engine")
    assert report.host == "vm" and len(report.rows) == 21
    assert {r.addr for r in report.rows if r.usable} == {"ofi+tcp://", "na+sm://", "tcp://",
                                                          "sm://"}
    assert report.row_for("ofi+tcp://").runtime_prefix == "ofi+tcp://"
    assert report.unknown_lines == ()
