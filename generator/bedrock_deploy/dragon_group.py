"""A deployment's ranks as a Dragon ``ProcessGroup`` started from a Python workflow.

Inside a Dragon program (run with ``dragon``), :class:`DragonServiceGroup` starts every rank of
a deployment generated for a ``launcher: dragon`` site (``local-dragon``) exactly as the
deployment's own driver does (it calls that driver's ``build_group``: a Policy per rank with its
node and layout CPUs, its rank in its environment, ``rank-exec.sh`` and the engine's log), and
is a :class:`~bedrock_deploy.running.ServiceProcess` for :meth:`Deployment.attach()
<bedrock_deploy.Deployment.attach>`: readiness, shutdown and cleanup are those of every other
launch. Needs ``dragonhpc`` (``bedrock-deploy[dragon]``); imported only when used.

Example (``dragon --single-node-override workflow.py``)::

    import bedrock_deploy as bd
    from bedrock_deploy.dragon_group import DragonServiceGroup

    deployment = bd.generate(bd.plan(bd.load_site("local-dragon"), svc, ppn=2), "deploy")
    with deployment.attach(DragonServiceGroup(deployment)) as running:
        running.wait_ready(120)
        running.database(rank=0).put("k", b"v")
    print(running.stop_result)          # every engine finalized, the group closed
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bedrock_deploy.errors import ServiceError
from bedrock_deploy.launch.scheduler import JobStatus
from bedrock_deploy.running import READY_MARKER, run_processes

if TYPE_CHECKING:
    from bedrock_deploy.deployment import Deployment

__all__ = ["DRIVER", "DragonServiceGroup"]

DRIVER = "scripts/dragon-driver.py"  # written by launcher dragon (launch/launchers/dragon.py)
STOP_PATIENCE = 2.0  # seconds between Dragon's SIGINT, SIGTERM and SIGKILL


class DragonServiceGroup:
    """The ranks of ``deployment`` as one Dragon ProcessGroup of this Dragon program.

    ``start=False`` builds the group without starting it (:meth:`start` does).
    """

    def __init__(self, deployment: Deployment, *, start: bool = True) -> None:
        driver = deployment.directory / DRIVER
        if not driver.is_file():
            raise ServiceError(f"{deployment.directory} has no {DRIVER}: it was generated for "
                               f"launcher {deployment.launcher!r}",
                               hint="generate it for a site with 'launcher: {type: dragon}' "
                               "such as local-dragon")
        self.deployment = deployment
        self.directory = deployment.directory
        self.log: Path | None = None  # each engine logs to run/logs/engine-<host>-<L>.log
        self._build: Callable[[], tuple[Any, list[Any]]] = runpy.run_path(
            str(driver))["build_group"]
        self.group: Any = None
        self.placed: list[Any] = []
        self._closed = False
        self._codes: list[int] = []
        if start:
            self.start()

    def start(self) -> None:
        """Build the group (the driver's ``build_group``), forget an earlier run's group file
        and readiness marker, and start every rank."""
        if self.group is not None:
            raise ServiceError("this Dragon group was started already")
        (self.directory / READY_MARKER).unlink(missing_ok=True)
        if self.deployment.group_file is not None:
            self.deployment.group_file.unlink(missing_ok=True)
        self.group, self.placed = self._build()
        self.group.init()
        self.group.start()

    # -- ServiceProcess --------------------------------------------------------------------
    @property
    def description(self) -> str:
        return f"Dragon ProcessGroup of {len(self.placed)} rank(s)"

    def running(self) -> bool:
        if self.group is None or self._closed:
            return False
        try:
            return bool(self.group.puids)
        except Exception:  # a closed or failed group runs nothing
            return False

    def is_ready(self) -> bool:
        return True  # no job script here: readiness is the group file and the pings

    def _exit_codes(self) -> list[int]:
        if self.group is not None and not self._closed:
            with contextlib.suppress(Exception):
                self._codes = [int(code) for _puid, code in self.group.inactive_puids]
        return self._codes

    def status(self) -> JobStatus:
        if self.running():
            return JobStatus(state="RUNNING", finished=False, succeeded=False)
        failed = [c for c in self._exit_codes() if c != 0]
        return JobStatus(state="FAILED" if failed else "COMPLETED", finished=True,
                         succeeded=not failed, exit_code=str(failed[0] if failed else 0),
                         detail=f"exit codes {self._codes}")

    def stop(self, timeout: float, force: Callable[[], bool], *, ready: bool = True
             ) -> tuple[int | None, bool]:
        """Give the ranks ``timeout`` s to end by themselves (their engines were asked to
        finalize when ``ready``), then stop the group (SIGINT, SIGTERM, SIGKILL) and close
        it. Returns (0 if every rank ended with status 0 else 1, whether it was stopped)."""
        if self.group is None:
            return None, False
        forced = False
        end = time.monotonic() + (timeout if ready else 0.0)
        while self.running() and time.monotonic() < end and not force():
            time.sleep(0.1)
        if self.running():
            forced = True
            with contextlib.suppress(Exception):
                self.group.stop(patience=STOP_PATIENCE)
        codes = self._exit_codes()
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self.group.close(patience=5.0)
        return (1 if any(c != 0 for c in codes) else 0), forced

    def leftovers(self) -> list[str]:
        return [f"{p}: {c}" for p, c in sorted(run_processes(None, self.directory).items())]

    def kill(self) -> None:
        for pid in run_processes(None, self.directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 25) -> str:
        return ""
