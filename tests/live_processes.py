"""Which processes are still alive: read from /proc, so a test sees engines, launchers and rank
scripts whatever started them (every node of the namespace cluster shares one PID namespace)."""

from __future__ import annotations

import os
from pathlib import Path


def processes_naming(directory: Path) -> list[str]:
    """Live processes (not zombies) whose command line names ``directory``, as ``"PID: cmd"``;
    this test process is left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(directory) in cmd and state not in {"Z", "X"}:
            found.append(f"{entry.name}: {cmd}")
    return found
