"""Linux CPU list syntax (``0-3,8,10-11``), as in sysfs, ``taskset -c`` and Slurm."""

from __future__ import annotations

from collections.abc import Iterable

from bedrock_deploy.limits import MAX_CPU_ID, NODE_CPUS


class CpuListError(ValueError):
    pass


def _cpu(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        raise ValueError(text)
    if len(text) > len(str(MAX_CPU_ID)) or int(text) > MAX_CPU_ID:
        raise CpuListError(NODE_CPUS.exceeded(f"CPU {text} is above the largest CPU id "
                                              f"{MAX_CPU_ID}"))
    return int(text)


def parse_cpulist(text: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]`` (sorted, unique). Empty text is an empty list. CPU ids
    are at most ``max_node_cpus - 1`` (:mod:`bedrock_deploy.limits`), so no list is huge."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return []
    for chunk in text.split(","):
        chunk = chunk.strip()
        lo, sep, hi = chunk.partition("-")
        try:
            if sep:
                a, b = _cpu(lo), _cpu(hi)
                if a > b:
                    raise CpuListError(f"range {chunk!r} goes backwards")
                cpus.update(range(a, b + 1))
            else:
                cpus.add(_cpu(chunk))
        except ValueError as err:
            if isinstance(err, CpuListError):
                raise
            raise CpuListError(
                f"{chunk!r} is not a CPU number or range (write e.g. '0-3,8,10-11')"
            ) from None
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    ordered = sorted(set(cpus))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def cpu_mask_hex(cpus: Iterable[int]) -> str:
    """CPU set as a hex mask, ``{0, 2}`` -> ``0x5`` (Slurm ``mask_cpu``)."""
    mask = 0
    for c in cpus:
        mask |= 1 << c
    return hex(mask)
