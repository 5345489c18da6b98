"""The embedded engine against every recorded run of the real Bedrock 0.16.1
(tests/data/bedrock-corpus): the same verdict, the same first error line, and for accepted
configs the same effective configuration (margo with its pools, xstreams and their CPUs,
progress/rpc pools, mercury; providers with type, id, config and dependencies; libraries;
bedrock) and the same CPUs for every xstream thread and every thread a component starts.

Each case is started exactly as it was recorded (``bedrock-engine na+sm -c CASE -v info``, or
``mpirun -np 2`` through bedrock-engine-mpi), on CPUs 0-1 (``taskset -c 0,1``) like the 2-CPU
machine of the recordings. Deliberate differences are listed in native/README.md; none of them
occurs in this corpus.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bedrock_corpus import Case, engine_verdict, load_cases, run_engine

CASES = load_cases()
pytestmark = pytest.mark.engine


def _params() -> list[object]:
    out: list[object] = []
    for c in CASES:
        marks = [pytest.mark.mpi] if c.mode == "mpi2" else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_engine_behaves_like_real_bedrock(case: Case, bin_dir: Path, tmp_path: Path) -> None:
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the recordings were made on CPUs 0-1; this process may use "
                    f"{sorted(os.sched_getaffinity(0))}")
    if case.mode == "mpi2" and os.sched_getaffinity(0) != {0, 1}:
        pytest.skip("mpirun binds the two ranks to the first cores of the machine")
    if case.mode == "mpi2" and shutil.which("mpirun.openmpi") is None:
        pytest.skip("mpirun.openmpi is not installed")
    run = run_engine(case, bin_dir, tmp_path)
    verdict = engine_verdict(case, run)
    assert verdict.accepted == case.accepted, run.output[-2000:]
    assert verdict.detail == [], "\n".join(verdict.detail) + "\n" + run.output[-2000:]
