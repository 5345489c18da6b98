"""The reproducers of issue 17 ("no input breaks the CLI", "injection and escapes in what we
generate"), each a test that failed before the fix: the committed corpus in
``tests/data/fuzz-corpus/`` (run in-process through the real command line, :mod:`fuzzing`) and
the cases that need a file name, a directory, a umask, a full disk or a signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bedrock_deploy.limits import ALL as LIMITS
from fuzzing import CORPUS, ROOT, Outcome, run_cli, verdict

KV = str(ROOT / "share" / "examples" / "kv-service.yaml")
MARGO_INFO = str(ROOT / "tests" / "data" / "transports" / "debian12-vm.margo-info.txt")

# name -> (command before the file, exit status, what stderr must hold)
CORPUS_CASES: dict[str, tuple[list[str], int, list[str]]] = {
    "flock-file-escape.service.yaml": (
        ["service", "validate"], 2,
        [":7:14: error: components[0].config.file: the path '../../victim.txt' leaves the "
         "deployment's run directory"]),
    "rocksdb-absolute-path.service.yaml": (
        ["service", "validate"], 2,
        [":8:18: error: components[0].config.database.config.path: the path '/etc/passwd' is "
         "absolute"]),
    "env-key-newline.profile.yaml": (
        ["sites", "validate"], 2,
        [":4:3: error: env.FOO\\n: 'FOO\\n' is not an environment variable name"]),
    "error-on-line-100.profile.yaml": (  # rich turned ':100:' into an emoji
        ["sites", "validate"], 2, [":100:1: error: nodes: "]),
    "undecodable-byte.profile.yaml": (
        ["sites", "validate"], 2, [":3:17: error: (top level): byte e9 is not UTF-8 text"]),
    "nul-character.profile.yaml": (
        ["sites", "validate"], 2, [":3:15: error: (top level): NUL character"]),
    "escape-sequences.profile.yaml": (
        ["sites", "validate"], 2, [":1:1: error: name: ", "\\x1b[31mRED\\x1b]0;pwned\\x07"]),
    "alias-bomb.profile.yaml": (
        ["sites", "validate"], 2,
        [":7:11: error: f[1]: the document expands to too many values",
         "limit max_values = 200,000 values"]),
    "huge-core-count.profile.yaml": (
        ["sites", "validate"], 2,
        [":3:1: error: node: 2 sockets x 10000000 cores x 2 threads is 40,000,000 CPUs "
         "(limit max_node_cpus = 8,192 CPUs)"]),
    "huge-cpulist.profile.yaml": (
        ["sites", "validate"], 2,
        [":7:15: error: node.numa_domains[0].cpus: CPU 4000000000 is above the largest CPU id "
         "8191 (limit max_node_cpus"]),
    "json-depth-500.json": (
        ["validate"], 2, [":1:", "nested too deeply (limit max_depth = 64 levels)"]),
    "json-5000-digits.json": (
        ["validate"], 2,
        [":3:51: error: providers[0].provider_id: integer too long (limit max_integer_digits"]),
    "yaml-5000-digits.service.yaml": (
        ["service", "validate"], 2,
        [":2:8: error: nodes: integer too long (limit max_integer_digits = 20 digits)"]),
    "yaml-depth-500.service.yaml": (
        ["service", "validate"], 2, [":2:", "nested too deeply (limit max_depth = 64 levels)"]),
    "margo-info-deep.json": (
        ["transports", "--site", "generic-slurm-tcp", "--margo-info"], 2,
        [":1:65: error: ", "nested too deeply (limit max_depth"]),
    "fi_info-huge-errno.txt": (  # a traceback before; the line is now just not understood
        ["transports", "--site", "generic-slurm-tcp", "--fi-info"], 0, []),
    "hg_info-huge-number.json": (
        ["transports", "--site", "generic-slurm-tcp", "--hg-info"], 2,
        [":1:", "integer too long (limit max_integer_digits"]),
    "provider-not-object.json": (  # found by the fuzz harness: no hint
        ["service", "validate"], 2,
        [":4:5: error: providers[0]: a provider is a JSON object", "    hint: write {"]),
    "margo-info-undecodable.txt": (
        ["transports", "--site", "generic-slurm-tcp", "--margo-info"], 0, []),
    "long-extends.profile.yaml": (  # found by the fuzz harness: OSError, exit 1
        ["sites", "validate"], 2, [":3:1: error: extends: no site profile 'aaaa"]),
    "long-bedrock-config.service.yaml": (  # found by the fuzz harness: OSError, exit 1
        ["service", "validate"], 2,
        [":3:1: error: bedrock_config: Bedrock config '", "' not found"]),
    "no-automatic-queue.profile.yaml": (  # found by the fuzz harness: no location
        ["generate", "--service", KV, "-o", "out", "--site"], 2,
        [":7:3: error: scheduler.queues: no queue of site 'no-automatic-queue' takes a 2-node "
         "job of 00:30:00: every queue of its table is marked 'auto: false'",
         "name a queue with --queue NAME"]),
}


def test_every_corpus_file_has_a_case() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md") == \
        sorted(CORPUS_CASES)


@pytest.mark.parametrize("name", sorted(CORPUS_CASES))
def test_corpus_reproducer(name: str, tmp_path: Path) -> None:
    command, status, expected = CORPUS_CASES[name]
    outcome = run_cli([*command, str(CORPUS / name)], tmp_path)
    assert verdict(outcome) is None, verdict(outcome)
    assert outcome.status == status, outcome.stderr
    for text in expected:
        assert text in outcome.stderr, outcome.stderr
    assert "\x1b" not in outcome.stdout + outcome.stderr
    assert "\U0001f4af" not in outcome.stderr  # rich's emoji for ':100:'
    assert outcome.seconds < 5, f"{name} took {outcome.seconds:.1f} s"


def test_service_path_escape_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    outcome = run_cli(["generate", "--site", "generic-slurm-tcp", "--service",
                       str(CORPUS / "flock-file-escape.service.yaml"), "-o", str(out)], tmp_path)
    assert outcome.status == 2 and "victim.txt" in outcome.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_profile_file_name_with_a_newline_adds_no_command(tmp_path: Path) -> None:
    evil = tmp_path / "evil\ntouch HDPWNED\n.yaml"
    evil.write_text("extends: generic-slurm-tcp\nname: evil\n")
    out = tmp_path / "dep"
    outcome = run_cli(["generate", "--site", str(evil), "--service", KV, "-o", str(out)],
                      tmp_path)
    assert outcome.status == 0, outcome.stderr
    script = (out / "scripts" / "job.sbatch").read_text()
    assert "touch HDPWNED" not in script.splitlines()
    assert "# Generated by bedrock-deploy" in script and "evil\\ntouch HDPWNED\\n.yaml" in script
    done = subprocess.run(["bash", "-n", str(out / "scripts" / "job.sbatch")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_profile_problems_found_while_rendering_are_located(tmp_path: Path) -> None:
    # found by the Spack renderer (it parses specs), located at the key in the profile
    profile = tmp_path / "site.yaml"
    profile.write_text('extends: generic-slurm-tcp\nname: ext\nspack:\n  externals:\n'
                       '    - {spec: "openmpi@5\\ntouch HDPWNED", prefix: /usr}\n')
    outcome = run_cli(["generate", "--site", str(profile), "--service", KV, "-o",
                       str(tmp_path / "dep")], tmp_path)
    assert outcome.status == 2 and verdict(outcome) is None, outcome.stderr
    assert f"{profile}:5:8: error: spack.externals[0].spec: invalid spec" in outcome.stderr


def _deploy(tmp_path: Path, out: Path, *extra: str) -> Outcome:
    return run_cli(["generate", "--site", "generic-slurm-tcp", "--service", KV,
                    "-o", str(out), *extra], tmp_path)


def test_force_replaces_only_a_deployment(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.json").write_text("{}\n")
    (victim / "precious").write_text("data\n")
    outcome = _deploy(tmp_path, victim, "--force")
    assert outcome.status == 2
    assert "not a bedrock-deploy deployment" in outcome.stderr
    assert (victim / "precious").read_text() == "data\n"
    # a deployment is replaced (atomically), and so is one written before the format marker
    dep = tmp_path / "dep"
    assert _deploy(tmp_path, dep).status == 0
    manifest = json.loads((dep / "manifest.json").read_text())
    assert manifest["format"] == "bedrock-deploy-manifest/1"
    del manifest["format"]
    (dep / "manifest.json").write_text(json.dumps(manifest))
    assert _deploy(tmp_path, dep, "--force").status == 0
    # a symlinked manifest is not a marker
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").symlink_to(dep / "manifest.json")
    assert _deploy(tmp_path, other, "--force").status == 2


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert _deploy(tmp_path, tmp_path / "a" / "dep").status == 0
    finally:
        os.umask(old)
    for path in [tmp_path / "a", *(tmp_path / "a").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o022, f"{path} is {oct(mode)}"
        want = 0o755 if path.is_dir() or path.suffix in (".sh", ".sbatch") else 0o644
        assert mode == want, f"{path} is {oct(mode)}, expected {oct(want)}"


def _private_tmpfs(size: str, mount: Path, command: str, keep_open: Path | None = None
                   ) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with a small tmpfs on ``mount``, in a private mount namespace (nothing
    is mounted outside it; it disappears with the command). ``keep_open``: a directory opened
    as file descriptor 3 before the tmpfs hides it (``/proc/self/fd/3`` reaches it after)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private tmpfs")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("mount namespaces are not available here")
    script = f"mount -t tmpfs -o size={size} tmpfs {mount} && {command}"
    if keep_open is not None:
        script = f"exec 3<{keep_open} && {script}"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cli = f"{sys.executable} -m bedrock_deploy"
    done = _private_tmpfs(
        "40k", mnt, f"{cli} generate --site generic-slurm-tcp --service {KV} -o {mnt}/x/dep; "
        f"echo status=$?; ls -A {mnt}")
    lines = done.stdout.splitlines()
    assert "status=1" in lines, done.stdout + done.stderr
    assert lines[-1] == "status=1"  # and ls printed nothing: no partial directory, no parent
    assert "Traceback" not in done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], done.stderr
    assert "nothing was left half-written" in err[0]


def test_engine_probe_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    from bedrock_deploy.engine import EngineNotFound, executable

    try:
        executable("bedrock-engine")
    except EngineNotFound as exc:
        pytest.skip(str(exc))
    cli = f"{sys.executable} -m bedrock_deploy"
    keep: list[str] = []  # a checkout under /tmp (a clone for a CI dry run) is bound back
    bind_back = ""
    if ROOT.is_relative_to("/tmp"):
        keep = [ROOT.relative_to("/tmp").parts[0]]
        bind_back = f"mkdir -p {ROOT} && mount --no-canonicalize --bind /proc/self/fd/3 {ROOT} && "
    done = _private_tmpfs(
        "16m", Path("/tmp"), f"{bind_back}{cli} transports --site local --engine >/dev/null && "
        f"{cli} probe >/dev/null && echo ok && ls -A /tmp", keep_open=ROOT if keep else None)
    assert done.stdout.splitlines() == ["ok", *keep], done.stdout + done.stderr


def test_ctrl_c_at_any_moment_of_the_first_second(tmp_path: Path) -> None:
    """SIGINT while Python imports, parses, probes, generates or launches: exit 130, one line,
    no traceback, no partial deployment, nothing left running."""
    from bedrock_deploy.engine import EngineNotFound, executable

    try:
        executable("bedrock-engine")
    except EngineNotFound as exc:
        pytest.skip(str(exc))
    for i, delay in enumerate([0.02, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.3]):
        out = tmp_path / f"dep{i}"
        proc = subprocess.Popen([sys.executable, "-m", "bedrock_deploy", "up", "-o", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if proc.returncode == 0:
            continue  # it finished first (a fast machine): nothing to check
        # A traceback none of whose frames is a file of the package: the interpreter was still
        # starting (site and the editable install's import hook, runpy, importlib).
        ours = [line for line in stderr.splitlines()
                if line.strip().startswith("File ") and f"{os.sep}bedrock_deploy{os.sep}" in line]
        startup = ("init_import_site" in stderr or "Could not import runpy" in stderr
                   or not ours)
        if proc.returncode != 130 and startup:
            # so early that the interpreter itself was still starting (site, with the editable
            # install's path hook, or runpy), before any code of ours ran: CPython's own
            # default action or message; nothing was written
            assert not out.exists(), (delay, stderr)
            continue
        assert proc.returncode == 130, (delay, stdout, stderr)
        assert "Traceback" not in stderr, (delay, stderr)
        said = [line for line in stderr.splitlines() if "interrupted" in line]
        assert len(said) == 1, (delay, stderr)
        assert not out.exists() or (out / "manifest.json").is_file(), delay
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".dep{i}.")], delay
        left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
        assert left.stdout.strip() == "", (delay, left.stdout)


def test_limits_are_documented_once() -> None:
    page = (ROOT / "docs" / "limits.md").read_text()
    for limit in LIMITS:
        assert f"`{limit.name}`" in page, limit.name
        assert f"{limit.value:,}" in page, (limit.name, limit.value)


def test_xstreams_of_a_node_are_bounded(tmp_path: Path) -> None:
    service = tmp_path / "big.yaml"
    service.write_text("name: big\nprocesses_per_node: 1024\nthreads: {rpc: 256, io: 256}\n"
                       "placement: {too_few_cores: share}\ncomponents:\n"
                       "  - {name: io, type: abt_io}\n")
    outcome = run_cli(["generate", "--site", "generic-slurm-tcp", "--service", str(service),
                       "-o", str(tmp_path / "dep")], tmp_path)
    assert outcome.status == 2 and verdict(outcome) is None, outcome.stderr
    assert f"{service}:2:1: error: processes_per_node: 1024 processes per node x 514 xstreams" \
        in outcome.stderr
    assert "(limit max_node_xstreams = 65,536 xstreams)" in outcome.stderr
    assert outcome.seconds < 5
