"""``bedrock-engine-mpi``: start the compiled engine as one rank of an MPI job.

Rank and size come from MPI itself (mpi4py), and Flock's ``"bootstrap": "mpi"`` exchanges the
members' addresses with a real ``MPI_Allgather``: rank 0 then writes the group file. Works
under ``mpirun.openmpi``, ``mpiexec.mpich``/``mpiexec.hydra`` and ``srun`` (``--mpi=pmix`` for
Open MPI, ``--mpi=pmi2`` for MPICH).

mpi4py's wheel holds both MPI ABIs and picks the one of ``libmpi.so`` (Open MPI on Debian).
Under an MPICH launcher we therefore select the MPICH ABI (``MPI4PY_MPIABI=mpich``) and
provide the ``libmpi.so.12`` name Debian does not ship (a symlink to ``libmpich.so.12``),
re-executing ourselves once so the dynamic loader sees it. A world size that disagrees with
the launcher (the classic wrong-MPI pairing that silently runs singletons) is an error. What
each pairing did on this machine: docs/platform-notes.md, "MPI under Slurm, and running as root".

Usage: ``bedrock-engine-mpi <address> -c CONFIG [-o OUT] [-v LEVEL]``; ``{rank}`` in ``-o``
is replaced by the MPI rank.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bedrock_deploy.rank_env import size_vars

_REEXEC_MARK = "BEDROCK_DEPLOY_ENGINE_MPI_REEXEC"
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def launcher_world_size(env: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """World size announced by the launcher's environment, if any (the size variables of
    share/launch/rank-variables.json, first set wins)."""
    for key in size_vars():
        value = env.get(key)
        if value and value.isdigit():
            return int(value)
    return None


def launched_by_mpich(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True under an MPICH-style PMI launcher (Hydra's mpiexec, srun --mpi=pmi2)."""
    if "OMPI_COMM_WORLD_SIZE" in env or "PMIX_RANK" in env:
        return False
    return any(k in env for k in ("PMI_RANK", "PMI_FD", "PMI_SIZE", "HYDRA_CONTROL_FD"))


def _find_libmpich() -> Path | None:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for d in [*dirs, *_LIB_DIRS]:
        candidate = Path(d) / "libmpich.so.12"
        if candidate.exists():
            return candidate
    return None


def _select_mpi_abi(argv: list[str]) -> None:
    """Under MPICH, re-exec once with the MPICH ABI visible to mpi4py."""
    if not launched_by_mpich() or os.environ.get(_REEXEC_MARK) or "MPI4PY_MPIABI" in os.environ:
        return
    libmpich = _find_libmpich()
    if libmpich is None:
        return  # MPICH without Debian's naming: let mpi4py find libmpi.so.12 itself
    shim = Path(tempfile.gettempdir()) / f"bedrock-deploy-mpich-abi-{os.getuid()}"
    shim.mkdir(exist_ok=True)
    link = shim / "libmpi.so.12"
    if not link.exists():
        with contextlib.suppress(FileExistsError):
            link.symlink_to(libmpich)
    env = dict(os.environ)
    env["MPI4PY_MPIABI"] = "mpich"
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(shim), env.get("LD_LIBRARY_PATH")) if p)
    env[_REEXEC_MARK] = "1"
    os.execve(sys.executable, [sys.executable, "-m", "bedrock_deploy.engine_mpi", *argv], env)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bedrock-engine-mpi", description=__doc__.split("\n")[0])
    p.add_argument("address", nargs="?", default="", help="protocol or address (e.g. na+sm)")
    p.add_argument("-c", "--config", help="JSON configuration file")
    p.add_argument("-o", "--output-config", help="running config to write ({rank} expands)")
    p.add_argument("-v", "--verbose", default="info", help="log level")
    return p


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    _select_mpi_abi(args_list)
    mpich = launched_by_mpich()
    if mpich:
        import mpi4py

        # Under an MPICH-style PMI (Hydra, srun --mpi=pmi2) the rank leaves without
        # MPI_Finalize: the process manager does not need it, and MPICH 4.0 over UCX tcp was
        # seen hanging in it now and then (docs/test-cluster.md), which would leave an engine
        # that cannot stop.
        mpi4py.rc.finalize = False

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    expected = launcher_world_size()
    if expected is not None and expected != size:
        print(
            f"bedrock-engine-mpi: MPI reports a world of size {size} but the launcher started "
            f"{expected} processes: mpi4py loaded an MPI library that does not match the "
            f"launcher ({MPI.Get_library_version().splitlines()[0]}). Use mpirun.openmpi / "
            "srun --mpi=pmix with Open MPI, mpiexec.mpich / srun --mpi=pmi2 with MPICH.",
            file=sys.stderr,
        )
        return 1

    from bedrock_deploy.engine import bindings

    engine = bindings()
    engine.set_log_level(args.verbose)
    config: Any = Path(args.config).read_text() if args.config else ""
    try:
        server = engine.Server(args.address, config, rank=rank, size=size,
                               allgather=comm.allgather)
    except Exception as exc:  # config errors, pinning failures: reported, non-zero exit
        print(f"[critical] rank {rank}: {exc}", file=sys.stderr, flush=True)
        comm.Abort(1)
        return 1
    if args.output_config:
        Path(args.output_config.replace("{rank}", str(rank))).write_text(
            json.dumps(server.config))
    print(f"[info] Bedrock daemon now running at {server.address} (rank {rank}/{size})",
          file=sys.stderr, flush=True)
    # MPI's part is over (the bootstrap's allgather). Leaving MPI now detaches this rank from the
    # launcher's process manager: under srun --mpi=pmix, a rank that dies while still attached
    # makes Slurm's PMIx plugin kill every rank of the step at once, and the job script could
    # no longer tell which engine died nor shut the others down cleanly. MPI_Finalize is
    # collective; every rank reaches it once its engine is up.
    if not mpich:
        MPI.Finalize()

    def _stop(signum: int, frame: object) -> None:
        server.finalize()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.wait_for_finalize()
    server.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
