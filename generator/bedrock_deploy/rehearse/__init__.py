"""Dress rehearsal of a deployment for any site, on this machine (``bedrock-deploy rehearse``).

The deployment's real job script runs on the namespace test cluster (tests/cluster/), with what
cannot exist here emulated by programs that enforce that thing's documented rules: PBS Pro
(:mod:`.pbs`), Cray PALS ``mpiexec`` (:mod:`.pals`), the HPE Slingshot options of ``srun`` around
the cluster's real Slurm (:mod:`.slurm`), Slingshot CXI itself (the engine's emulated fabric,
``native/src/transport_emulated.cpp``), the site's CPU numbering
(``native/src/rehearsal_cpus.cpp``), ``module`` and ``spack`` (:mod:`.standins`). The checks
are listed in ``share/rehearse/rules.yaml``; :func:`rehearse` returns the checklist. See
docs/rehearse.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bedrock_deploy.rehearse.run import Check, RehearsalReport, Rule, rehearse

__all__ = ["Check", "RehearsalReport", "Rule", "rehearse"]


def __getattr__(name: str) -> Any:  # the orchestrator is imported on first use (tools stay light)
    if name in __all__:
        from bedrock_deploy.rehearse import run

        return getattr(run, name)
    raise AttributeError(name)
