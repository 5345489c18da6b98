"""The client a rehearsal's job runs once the service is ready (``BEDROCK_DEPLOY_CLIENT``):
``python -m bedrock_deploy.rehearse.client REPORT``.

It talks to every member the way an application would (from inside the job, started as the
job script starts its client: through the launcher on Slingshot sites): each member answers a
query, each key/value (yokan) provider takes a key, gives it back and erases it. The report
(JSON) lists what each member said; the exit status is 0 only when all of it worked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bedrock_deploy.rehearse.client REPORT.json", file=sys.stderr)
        return 2
    report_path = Path(argv[0])
    report: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                              "launched": os.environ.get("BEDROCK_REHEARSAL_LAUNCHED", ""),
                              "vnis": os.environ.get("SLINGSHOT_VNIS", ""), "members": {},
                              "errors": []}
    context = os.environ.get("BEDROCK_REHEARSAL_CONTEXT")
    if context:
        from bedrock_deploy.rehearse.common import Context

        Context.load(context).event("tool", True, "", tool="client",
                                    launched=report["launched"], vnis=report["vnis"])
    protocol = os.environ.get("BEDROCK_DEPLOY_PROTOCOL", "")
    group_file = os.environ.get("BEDROCK_DEPLOY_GROUP_FILE", "")
    try:
        from bedrock_deploy.client import Client, read_group_file

        members = read_group_file(group_file) if group_file else []
        if not members:
            raise RuntimeError(f"no members in the group file {group_file or '(none)'}")
        client = Client(protocol, timeout=10.0)
        for m in members:
            entry: dict[str, Any] = {"rank": m.rank}
            handle = client.service(m.address)
            config = handle.config
            engine = config.get("bedrock_engine", {})
            entry["host"] = engine.get("host")
            entry["pid"] = engine.get("pid")
            entry["providers"] = [p.get("type") for p in config.get("providers", [])]
            kv = [p for p in config.get("providers", []) if p.get("type") == "yokan"]
            if kv:
                db = handle.database(kv[0]["name"])
                key = f"rehearsal-{m.rank}-{time.time_ns()}"
                db.put(key, b"value of " + key.encode())
                back = db.get(key)
                entry["kv"] = back == b"value of " + key.encode() and db.erase(key)
                if not entry["kv"]:
                    report["errors"].append(f"member {m.rank}: the key did not come back")
            report["members"][m.address] = entry
    except Exception as err:  # the report says what failed; the status says it failed
        report["errors"].append(f"{type(err).__name__}: {err}")
    report["ok"] = not report["errors"]
    report_path.write_text(json.dumps(report, indent=1))
    for e in report["errors"]:
        print(f"rehearsal client: {e}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
