"""The client the multi-node tests run inside a job once the service is ready
(``submit --client``): it asks every member of the flock group what it is and where it runs, and
exercises it, then writes what it saw as JSON for the test to check.

    python check_service.py OUT.json [KEYS]

Uses BEDROCK_DEPLOY_GROUP_FILE and BEDROCK_DEPLOY_PROTOCOL (set by the job script). Per member
(by the address in the group file):
- ``report``: the engine's own ``query`` answer, ``bedrock_engine`` part (host, pid, rank, size,
  xstreams with the CPUs each is pinned to) and its self address ``margo.mercury.address``;
- ``netns``: the inode of the engine process's network namespace (``/proc/PID/ns/net``: one
  PID namespace is shared by every node here, so the kernel says which node it runs in);
- ``kernel_cpus``: ``sched_getaffinity`` of each xstream's OS thread;
- ``view``: the members of its flock view; ``kv``: KEYS keys put through it and read back.
Runs on the batch host (node1), so the members of other nodes are reached over the bridge.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def main() -> int:
    out = Path(sys.argv[1])
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    from bedrock_deploy.engine import bindings

    group = json.loads(Path(os.environ["BEDROCK_DEPLOY_GROUP_FILE"]).read_text())
    protocol = os.environ["BEDROCK_DEPLOY_PROTOCOL"]
    client = bindings().Client(protocol.split(":")[0])
    client.set_timeout_ms(10000)
    members: dict[str, Any] = {}
    for m in group["members"]:
        addr = m["address"]
        full = client.query(addr)
        eng = full["bedrock_engine"]
        kernel = {}
        for x in eng["xstreams"]:
            try:
                kernel[x["name"]] = sorted(os.sched_getaffinity(int(x["os_thread_id"])))
            except OSError:
                kernel[x["name"]] = None
        flock_id = next(p["provider_id"] for p in full["providers"] if p["type"] == "flock")
        kv_id = next(p["provider_id"] for p in full["providers"] if p["type"] == "yokan")
        view = [str(v["address"]) for v in client.flock_view(addr, flock_id)["members"]]
        items = [(f"check/{eng['rank']}/{i}".encode(), f"{addr}#{i}".encode())
                 for i in range(keys)]
        for k, v in items:
            client.put(addr, kv_id, k, v)
        read_back = sum(1 for k, v in items if client.get(addr, kv_id, k) == v)
        members[addr] = {
            "report": eng,
            "self_address": full["margo"]["mercury"]["address"],
            "netns": os.stat(f"/proc/{eng['pid']}/ns/net").st_ino,
            "kernel_cpus": kernel,
            "view": view,
            "kv": {"put": keys, "read_back": read_back},
        }
    out.write_text(json.dumps({"client_host": os.uname().nodename, "members": members},
                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
