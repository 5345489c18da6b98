"""A Dragon workflow around a Bedrock key/value service, all started from this one program.

In the style of Dragon's MPI workflow demo (examples/dragon_native/mpi/
hpc_workflow_demo_highlevel.py in https://github.com/DragonHPC/dragon: producer processes
feeding a consumer through a queue): here the service is a Bedrock deployment whose ranks run as
one Dragon ProcessGroup (bedrock_deploy.dragon_group), PRODUCERS producer processes store their
results in it through the bedrock_deploy client (each result in the key/value database of one
member, chosen by the producer), and a consumer process reads every result back from the member
that holds it, as the producers announce them on a Dragon queue.

Run it with Dragon, on this host::

    dragon --single-node-override share/examples/dragon-workflow.py [DIR] [--ppn N]

DIR (default ./deployments/dragon-workflow) receives the deployment generated for site
local-dragon from share/examples/kv-service.yaml. Exit status 0: every result was read back
intact and the service stopped cleanly (no engine answers, no process of it is left).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import sys
import time
from pathlib import Path

import bedrock_deploy as bd
from bedrock_deploy.dragon_group import DragonServiceGroup

HERE = Path(__file__).resolve().parent
PRODUCERS = 3
RESULTS_PER_PRODUCER = 20


def producer(producer_id: int, protocol: str, addresses: list[str], results: mp.Queue) -> None:
    """Compute results and store each in one member's database (round robin); announce it."""
    from bedrock_deploy.client import Client  # imported here: this runs in its own process

    client = Client(protocol)
    dbs = [client.service(address).database("kv") for address in addresses]
    for i in range(RESULTS_PER_PRODUCER):
        key = f"result/{producer_id}/{i:04d}"
        value = f"{producer_id}:{i}:{(producer_id + 1) * i * i}".encode()
        member = (producer_id + i) % len(dbs)
        dbs[member].put(key, value)
        results.put((member, key, value))
    results.put(None)  # this producer is done


def consumer(protocol: str, addresses: list[str], results: mp.Queue,
             summary: mp.Queue) -> None:
    """Read every announced result back from the member that stored it."""
    from bedrock_deploy.client import Client

    client = Client(protocol)
    dbs = [client.service(address).database("kv") for address in addresses]
    done, read, wrong = 0, 0, []
    while done < PRODUCERS:
        try:
            item = results.get(timeout=60)
        except queue.Empty:
            wrong.append("no result for 60 s")
            break
        if item is None:
            done += 1
            continue
        member, key, value = item
        got = dbs[member].get(key)
        read += 1
        if got != value:
            wrong.append(f"{key} on member {member}: {got!r} != {value!r}")
    summary.put({"read": read, "wrong": wrong,
                 "listed": [len(db.list("result/")) for db in dbs]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", default="deployments/dragon-workflow")
    parser.add_argument("--ppn", type=int, default=2, help="service processes (default 2)")
    parser.add_argument("--site", default="local-dragon")
    args = parser.parse_args()
    import dragon  # noqa: F401  (registers the "dragon" start method of multiprocessing)
    from dragon.native.process import Process

    mp.set_start_method("dragon")  # processes and queues of the Dragon runtime

    plan = bd.plan(bd.load_site(args.site), bd.load_service(HERE / "kv-service.yaml"),
                   nodes=1, ppn=args.ppn)
    deployment = bd.generate(plan, args.directory, force=True)
    print(f"deployment {deployment.directory}: {deployment.total_processes} rank(s), "
          f"{deployment.protocol}", flush=True)
    t0 = time.monotonic()
    with deployment.attach(DragonServiceGroup(deployment)) as running:
        members = running.wait_ready(timeout=120)
        print(f"service ready in {time.monotonic() - t0:.1f}s: "
              + ", ".join(f"rank {m.rank} {m.address}" for m in members), flush=True)
        addresses = [m.address for m in members]
        results: mp.Queue = mp.Queue()
        summary: mp.Queue = mp.Queue()
        workers = [Process(target=consumer, args=(deployment.protocol, addresses, results,
                                                  summary))]
        workers += [Process(target=producer, args=(p, deployment.protocol, addresses, results))
                    for p in range(PRODUCERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        report = summary.get(timeout=30)
        codes = [w.returncode for w in workers]
    stop = running.stop_result
    expected = PRODUCERS * RESULTS_PER_PRODUCER
    print(f"producers and consumer exit codes {codes}; results read back {report['read']} of "
          f"{expected}; keys per member {report['listed']}", flush=True)
    for problem in report["wrong"]:
        print(f"  wrong: {problem}", flush=True)
    print(f"service stopped: {stop}", flush=True)
    ok = (report["read"] == expected and not report["wrong"] and not any(codes)
          and sum(report["listed"]) == expected and stop is not None and stop.clean)
    print("workflow " + ("ok" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
