"""Multi-node for real: our deployments across the namespace cluster (tests/cluster/cluster.sh):
each node is its own network + UTS namespace with its own address on a bridge, running a real
slurmd under one real slurmctld; jobs go through sbatch/srun, MPI bootstraps through PMIx (Open
MPI) or PMI-2 (MPICH), the engines talk TCP over the bridge.

Where each engine runs is taken from the engines themselves: their own ``query`` report (host
name, pid, self address), and the kernel's view of that pid (its network namespace is the
node's). Nothing is asserted from what the job script was told. Every run checks that nothing of
it is left: no process naming the deployment, on any node.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import CLUSTER, Cluster
from live_processes import processes_naming as processes_in

ROOT = Path(__file__).resolve().parent.parent
KV = ROOT / "share" / "examples" / "kv-service.yaml"
CHECK = ROOT / "tests" / "cluster" / "check_service.py"

pytestmark = [pytest.mark.cluster]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bedrock_deploy", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def cluster_sh(*args: str, env: dict[str, str] | None = None, timeout: float = 300
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def need_engine() -> None:
    from bedrock_deploy.launch.render import MPI_DAEMON, embedded_engine_dir

    d = Path(embedded_engine_dir())
    missing = [t for t in ("bedrock-engine", "bedrock-engine-query", "bedrock-engine-shutdown")
               if not (d / t).is_file()]
    if missing:
        pytest.skip(f"compiled engine not installed in {d} (missing {', '.join(missing)})")
    if subprocess.run([sys.executable, "-c", "import bedrock_deploy.engine_mpi, mpi4py"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"{MPI_DAEMON} (bedrock_deploy.engine_mpi + mpi4py) is not installed")


def generate(out: Path, nodes: int, ppn: int, *extra: str, site: str = "local-cluster"
             ) -> Path:
    done = cli("generate", "--site", site, "--service", str(KV), "-o", str(out),
               "--nodes", str(nodes), "--ppn", str(ppn), *extra)
    assert done.returncode == 0, done.stderr
    return out


def assert_nothing_left(directory: Path, cluster: Cluster, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while processes_in(directory) and time.monotonic() < end:
        time.sleep(0.2)
    assert processes_in(directory) == []
    for node in cluster.node_names():  # and in each node's namespace, by name
        pids = subprocess.run(["ip", "netns", "pids", f"bdc-{node}"], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            assert str(directory) not in cmd, (node, pid, cmd)


def submitted_job(stderr: str) -> str:
    m = re.search(r"submitted job (\d+)", stderr)
    assert m, stderr
    return m.group(1)


def job_fields(job_id: str, cluster: Cluster) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True,
                         text=True, env=cluster.env).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def ip_of(address: str) -> str:
    m = re.match(r"^[a-z0-9+;_]+://([0-9.]+):\d+$", address)
    assert m, f"not a TCP address: {address}"
    return m.group(1)


def planned_cpus(config: dict[str, Any]) -> dict[str, list[int]]:
    return {x["name"]: sorted(x.get("affinity") or [x["cpubind"]])
            for x in config["margo"]["argobots"]["xstreams"]
            if x.get("affinity") or "cpubind" in x}


def check_service_across_nodes(dep: Path, cluster: Cluster, seen: dict[str, Any], nodes: int,
                               ppn: int) -> None:
    """What the client saw inside the job (check_service.py), against the group file, the
    layout and the kernel."""
    total = nodes * ppn
    hosts = cluster.hosts()
    netns = cluster.netns_of_node()
    group = [m["address"] for m in json.loads((dep / "run" / "group.json").read_text())["members"]]
    assert len(group) == total and len(set(group)) == total
    # TCP over the bridge, never shared memory, and members on `nodes` different addresses
    assert all(a.startswith("ofi+tcp://") for a in group), group
    assert len({ip_of(a) for a in group}) == nodes
    members = seen["members"]
    assert sorted(members) == sorted(group)
    per_host: Counter[str] = Counter()
    for addr, m in members.items():
        report = m["report"]
        host = report["host"]  # the engine's own word
        per_host[host] += 1
        assert host in cluster.node_names(), report
        assert m["self_address"] == addr  # the engine advertises what the group file lists
        assert ip_of(addr) == hosts[host], (addr, host)  # its address is its node's
        assert netns[m["netns"]] == host, (addr, host)  # and the kernel agrees where it runs
        assert report["size"] == total
        assert sorted(m["view"]) == sorted(group)  # its flock view lists every member
        assert m["kv"]["read_back"] == m["kv"]["put"] > 0
        # xstreams pinned where the layout says, on its node (one config per local rank)
        config = json.loads((dep / "configs" / f"rank-{report['rank'] % ppn}.json").read_text())
        planned = planned_cpus(config)
        actual = {x["name"]: sorted(x["cpus"]) for x in report["xstreams"]}
        assert planned, "the layout pins nothing: nothing to check"
        for name, cpus in planned.items():
            assert actual.get(name) == cpus, (addr, name, actual.get(name), cpus)
            assert m["kernel_cpus"][name] == cpus, (addr, name, m["kernel_cpus"][name])
    assert sorted(m["report"]["rank"] for m in members.values()) == list(range(total))
    assert len(per_host) == nodes and set(per_host.values()) == {ppn}, per_host
    # rank r runs local rank r % ppn on its node: the engine logs say so
    for log in (dep / "run" / "logs").glob("engine-*.log"):
        head = log.read_text().splitlines()[0]
        host, local = log.stem.removeprefix("engine-").rsplit("-", 1)
        rank = int(re.search(r" rank=(\d+)", head).group(1))  # type: ignore[union-attr]
        assert rank % ppn == int(local) and f"host={host} " in head
    # the script's own readiness report (run/query.json) has the same engines on the same hosts
    ready = json.loads((dep / "run" / "query.json").read_text())
    assert {a: r["bedrock_engine"]["host"] for a, r in ready.items()} == \
        {a: m["report"]["host"] for a, m in members.items()}


def run_kv(tmp_path: Path, cluster: Cluster, nodes: int, ppn: int, *,
           site: str = "local-cluster") -> None:
    need_engine()
    dep = generate(tmp_path / "dep", nodes, ppn, site=site)
    seen_file = tmp_path / "seen.json"
    client = f"{sys.executable} {CHECK} {seen_file} 20"
    done = cli("submit", str(dep), "--wait", "--duration", "3", "--client", client,
               "--poll", "0.3", env=cluster.env, timeout=600)
    out_file = next((dep / "run" / "logs").glob("kv-*.out"), None)
    output = out_file.read_text() if out_file else "(no job output)"
    assert done.returncode == 0, done.stdout + done.stderr + output
    job = submitted_job(done.stderr)
    fields = job_fields(job, cluster)
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0", fields
    assert f"ready: {nodes * ppn} rank(s) answer" in output and "exit status 0" in output
    assert output.count("cpu-bind=MASK") == nodes * ppn  # srun bound every rank, on every node
    seen = json.loads(seen_file.read_text())
    assert seen["client_host"] == "node1"  # the batch shell runs on the first node
    check_service_across_nodes(dep, cluster, seen, nodes, ppn)
    assert_nothing_left(dep, cluster)


# ---- the cluster itself ------------------------------------------------------------------------
def test_nodes_are_separate_hosts_on_a_private_bridge(local_cluster: Cluster) -> None:
    states = subprocess.run(["sinfo", "-h", "-N", "-p", local_cluster.partition, "-o", "%N %T"],
                            capture_output=True, text=True, env=local_cluster.env).stdout
    nodes = dict(line.split() for line in states.splitlines())
    assert sorted(nodes) == local_cluster.node_names(), states
    assert set(nodes.values()) <= {"idle", "mixed", "allocated", "completing"}, states
    hosts = local_cluster.hosts()
    slurmd = {name: int(pid) for name, pid in (
        line.split() for line in (local_cluster.run / "pids").read_text().splitlines())}
    netns = local_cluster.netns_of_node()
    for node in local_cluster.node_names():
        def inside(*cmd: str, node: str = node) -> str:
            done = cluster_sh("exec", node, *cmd)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()
        assert inside("hostname") == node
        assert f"inet {hosts[node]}/24" in inside("ip", "-4", "-o", "addr", "show", "bdc0")
        assert inside("ls", "/sys/class/net").split() == ["bdc0", "lo"]  # its own NICs only
        assert inside("getent", "hosts", "node1").split()[0] == hosts["node1"]
        # the kernel: node's slurmd lives in that node's network namespace
        assert netns[os.stat(f"/proc/{slurmd[f'slurmd-{node}']}/ns/net").st_ino] == node
    # srun from beside slurmctld (`exec ctl`) reaches every node
    done = cluster_sh("exec", "ctl", "srun", f"--nodes={local_cluster.nodes}",
                      f"--ntasks={local_cluster.nodes}", "hostname", env=local_cluster.env,
                      timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == local_cluster.node_names()
    # nothing of it shows on the host: its hosts file and /sys stay the host's own
    assert "node1" not in Path("/etc/hosts").read_text()
    assert subprocess.run(["findmnt", "/etc/hosts"], capture_output=True).returncode != 0
    assert local_cluster.env["SLURM_CONF"].startswith(str(local_cluster.run))


def test_second_start_is_idempotent(local_cluster: Cluster) -> None:
    before = (local_cluster.run / "pids").read_text()
    # under this session's lease (as the fixture): a plain start would hold a "manual" lease
    done = cluster_sh("start", "--nodes", "2", "--lease", str(os.getpid()))
    assert done.returncode == 0, done.stderr
    assert f"already running with {local_cluster.nodes} node(s)" in done.stderr
    assert (local_cluster.run / "pids").read_text() == before
    status = cluster_sh("status")
    assert status.returncode == 0 and "slurmctld" in status.stdout
    assert status.stdout.count(" alive") == 2 + local_cluster.nodes  # munged, slurmctld, slurmds


def test_start_refuses_names_subnet_and_ports_it_does_not_own(local_cluster: Cluster,
                                                              tmp_path: Path) -> None:
    before = (local_cluster.run / "pids").read_text()
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                  text=True).stdout
    env = {**os.environ, "BEDROCK_CLUSTER_RUN": str(tmp_path / "other")}
    done = cluster_sh("start", "--nodes", "2", env=env)
    assert done.returncode == 1
    err = done.stderr
    assert "a network device named bdcbr0 exists and was not created by this script" in err
    assert "network namespace bdc-node1 exists and was not created by this script" in err
    assert "subnet 10.77.0.0/24 is already used by an address of this host" in err
    assert "TCP port 6827 is already in use" in err
    assert "not starting: nothing was changed" in err
    assert (local_cluster.run / "pids").read_text() == before
    assert subprocess.run(["ip", "netns", "list"], capture_output=True,
                          text=True).stdout == netns_before
    assert not (tmp_path / "other" / "pids").exists()
    assert cluster_sh("status").returncode == 0


def _free(subnet: str, ports: tuple[int, ...]) -> bool:
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    return f" {subnet}." not in addrs and not any(f":{p} " in listening for p in ports)


def test_a_second_cluster_starts_and_stop_leaves_nothing(local_cluster: Cluster,
                                                         tmp_path: Path) -> None:
    """Another cluster beside the shared one (other names, subnet, ports), so that stopping it
    does not disturb other sessions: start, one job, stop; nothing of it is left."""
    subnet, ports = "10.78.0", (6837, 6838)
    if not _free(subnet, ports):
        pytest.skip(f"{subnet}.0/24 or ports {ports} are in use on this host")
    run = tmp_path / "c2"
    env = {**os.environ, "BEDROCK_CLUSTER_RUN": str(run), "BEDROCK_CLUSTER_PREFIX": "bdt",
           "BEDROCK_CLUSTER_SUBNET": subnet, "BEDROCK_CLUSTER_SLURMCTLD_PORT": str(ports[0]),
           "BEDROCK_CLUSTER_SLURMD_PORT": str(ports[1])}
    try:
        done = cluster_sh("start", "--nodes", "1", env=env)
        assert done.returncode == 0, done.stderr
        pids = {n: int(p) for n, p in (
            line.split() for line in (run / "pids").read_text().splitlines())}
        assert set(pids) == {"munged", "slurmctld", "slurmd-node1"}
        client_env = {**env, "SLURM_CONF": str(run / "etc" / "slurm.conf")}
        job = subprocess.run(["sbatch", "--parsable", "-N1", "-o", str(tmp_path / "out"),
                              "--wrap", "hostname; ip -4 -o addr show bdc0"],
                             capture_output=True, text=True, env=client_env, check=True)
        job_id = job.stdout.strip()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                                   text=True, env=client_env).stdout
            if "JobState=COMPLETED" in state:
                break
            time.sleep(0.2)
        out = (tmp_path / "out").read_text()
        assert out.startswith("node1\n") and f"inet {subnet}.11/24" in out
        again = cluster_sh("start", "--nodes", "1", env=env)  # idempotent: same daemons
        assert again.returncode == 0 and "already running" in again.stderr
    finally:
        stop = cluster_sh("stop", env=env)
    assert stop.returncode == 0, stop.stderr
    assert "stopped: no daemon, namespace, bridge or veth" in stop.stderr
    for name, pid in pids.items():  # gone (or a zombie waiting for PID 1)
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists():
            assert stat.read_text().rsplit(")", 1)[1].split()[0] in {"Z", "X"}, name
    assert "bdt-node1" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                             text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "bdtbr0" not in links and "bdtv1" not in links
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(run) not in mounts and "bdt-node" not in mounts
    assert _free(subnet, ports)
    # and a second stop has nothing to do; the shared cluster is untouched
    assert "nothing to stop" in cluster_sh("stop", env=env).stderr
    assert cluster_sh("status").returncode == 0


# ---- transport selection across nodes ----------------------------------------------------------
def test_across_nodes_the_transport_is_tcp_over_the_bridge(tmp_path: Path) -> None:
    dep = generate(tmp_path / "dep", 2, 2)
    manifest = json.loads((dep / "manifest.json").read_text())
    assert manifest["transport"]["name"] == "tcp"
    assert manifest["transport"]["protocol"] == "ofi+tcp://"
    assert manifest["transport"]["env"] == {"FI_TCP_IFACE": "bdc0"}
    script = (dep / "scripts" / "job.sbatch").read_text()
    assert "export FI_TCP_IFACE=bdc0" in script and "na+sm" not in script.split("set -euo")[1]
    assert "#SBATCH --partition=cluster" in script and "--mpi=pmix" in script


def test_shared_memory_across_nodes_is_refused_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "dep"
    done = cli("generate", "--site", "local-cluster", "--service", str(KV), "-o", str(out),
               "--nodes", "2", "--ppn", "2", "--transport", "sm")
    assert done.returncode == 2
    assert "transport 'sm' is not usable for a 2-node service" in done.stderr
    assert "reaches only processes on one node" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    # on one node it is a fine choice
    one = cli("generate", "--site", "local-cluster", "--service", str(KV), "-o",
              str(tmp_path / "one"), "--nodes", "1", "--ppn", "2", "--transport", "sm")
    assert one.returncode == 0, one.stderr


# ---- our jobs across nodes ---------------------------------------------------------------------
def test_kv_service_on_two_nodes_two_per_node(tmp_path: Path, local_cluster: Cluster) -> None:
    run_kv(tmp_path, local_cluster, nodes=2, ppn=2)


def test_kv_service_on_three_nodes_one_per_node(tmp_path: Path, local_cluster: Cluster) -> None:
    run_kv(tmp_path, local_cluster, nodes=3, ppn=1)


def test_kv_service_with_mpich_pmi2(tmp_path: Path, local_cluster: Cluster) -> None:
    """MPICH's PMI-2 under srun (--mpi=pmi2): the engines' MPI entry point selects the MPICH
    ABI, and the flock group is bootstrapped through MPICH across the nodes."""
    if subprocess.run(["dpkg-query", "-W", "libmpich12"], capture_output=True).returncode:
        pytest.skip("MPICH (libmpich12) is not installed")
    profile = tmp_path / "local-cluster-mpich.yaml"
    profile.write_text(
        "name: local-cluster-mpich\n"
        "extends: local-cluster\n"
        "description: the test cluster with MPICH under srun --mpi=pmi2\n"
        "launcher: {mpi: pmi2}\n")
    run_kv(tmp_path, local_cluster, nodes=2, ppn=2, site=str(profile))
    output = next((tmp_path / "dep" / "run" / "logs").glob("kv-*.out")).read_text()
    assert "--mpi=pmi2" in output


def test_engine_killed_on_one_node_is_named_and_the_others_stop(tmp_path: Path,
                                                                local_cluster: Cluster) -> None:
    need_engine()
    dep = generate(tmp_path / "dep", 2, 2)
    env = {**local_cluster.env, "BEDROCK_DEPLOY_HEALTH_INTERVAL": "1"}
    done = cli("submit", str(dep), "--no-wait", "--duration", "120", env=env)
    assert done.returncode == 0, done.stderr
    job = submitted_job(done.stderr)
    ready = dep / "run" / "ready"
    end = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < end, "the service did not become ready"
        assert job_fields(job, local_cluster).get("JobState") in {"PENDING", "RUNNING"}
        time.sleep(0.2)
    report = json.loads((dep / "run" / "query.json").read_text())
    victim, eng = next((a, r["bedrock_engine"]) for a, r in sorted(report.items())
                       if r["bedrock_engine"]["host"] == "node2")
    assert os.stat(f"/proc/{eng['pid']}/ns/net").st_ino == \
        os.stat("/run/netns/bdc-node2").st_ino  # really the engine on node2
    os.kill(eng["pid"], 9)
    end = time.monotonic() + 120
    while (state := job_fields(job, local_cluster).get("JobState")) in {"PENDING", "RUNNING",
                                                                          "COMPLETING"}:
        assert time.monotonic() < end, "the job did not end after an engine was killed"
        time.sleep(0.3)
    fields = job_fields(job, local_cluster)
    output = next((dep / "run" / "logs").glob("kv-*.out")).read_text()
    assert (state, fields["ExitCode"]) == ("FAILED", "5:0"), output
    assert "1 member(s) stopped answering after the service was ready" in output
    assert "1 of 4 member(s) gone:" in output
    assert f"gone: {victim}, rank {eng['rank']} on host node2" in output
    assert "shutting down the 3 member(s) still answering" in output
    assert "exit status 5" in output
    # the others were shut down through the engines' own shutdown RPC, not killed
    for log in (dep / "run" / "logs").glob("engine-*.log"):
        text = log.read_text()
        if victim in text:
            assert "Shutdown requested remotely" not in text
        else:
            assert "Shutdown requested remotely" in text, log.name
    assert_nothing_left(dep, local_cluster)


def test_up_runs_the_whole_path_across_the_nodes(tmp_path: Path, local_cluster: Cluster) -> None:
    need_engine()
    dep = tmp_path / "dep"
    done = cli("up", "--site", "local-cluster", "--nodes", "2", "--np", "2", "--keys", "20",
               "--json", "-o", str(dep), env=local_cluster.env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["processes"] == 4 and report["job_id"]
    hosts = local_cluster.hosts()
    members = report["members"]
    assert sorted(m["rank"] for m in members) == [0, 1, 2, 3]
    assert Counter(m["host"] for m in members) == {"node1": 2, "node2": 2}
    for m in members:  # the engine's address is its own node's (both from its report)
        assert ip_of(m["address"]) == hosts[m["host"]]
    for s in report["smoke"]:
        assert (s["puts"], s["gets_ok"], s["listed"], s["erased"]) == (20, 20, 20, 20)
        assert s["view_members"] == 4 and s["view_matches"] is True
    assert report["xstreams"] and all(x["ok"] for x in report["xstreams"])
    assert all(x["kernel_cpus"] == x["engine_cpus"] for x in report["xstreams"])
    assert report["stop"]["script_status"] == 0 and report["stop"]["clean"] is True
    fields = job_fields(report["job_id"], local_cluster)
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0"
    assert_nothing_left(dep, local_cluster)
    assert all(ipaddress.ip_address(ip_of(m["address"])) in
               ipaddress.ip_network("10.77.0.0/24") for m in members)


def test_local_cluster_profile_describes_the_test_cluster() -> None:
    from bedrock_deploy.probe import probe_host
    from bedrock_deploy.sites import load_site

    prof = load_site("local-cluster").profile
    probed = probe_host().node
    # every node has this host's CPUs; its only NIC besides lo is its end of the bridge
    assert prof.node.model_copy(update={"nics": probed.nics}) == probed
    assert [(n.name, n.kind.value) for n in prof.node.nics] == [("bdc0", "tcp")]
    tcp = next(t for t in prof.transports if t.name == "tcp")
    assert tcp.scope.value == "inter-node" and tcp.env == {"FI_TCP_IFACE": "bdc0"}
    assert (prof.scheduler.type, prof.scheduler.partition) == ("slurm", "cluster")
    assert (prof.launcher.type, prof.launcher.mpi, prof.launcher.command) == \
        ("srun", "pmix", None)
    # nothing of `local` that keeps MPI on one host survives
    assert "lo" not in prof.launcher.env.values()
    assert prof.launcher.env["UCX_TLS"] == "tcp,self" and prof.engine.value == "embedded"
