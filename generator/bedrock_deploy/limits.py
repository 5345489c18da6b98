"""Resource limits on every input, defined once (documented in ``docs/limits.md``).

An input file is read by people's tools and by ours on login nodes: whatever it holds, reading it
must end quickly, in bounded memory, with a located error naming the limit it broke. Each limit
is far above what a real input needs (the figures in each ``why``) and far below what would hurt
a login node. ``tests/test_limits_doc.py`` checks that ``docs/limits.md`` lists these values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str  # how messages and docs/limits.md call it
    value: int
    unit: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} = {self.value:,} {self.unit}".rstrip()

    def exceeded(self, what: str) -> str:
        """``"<what> (limit max_depth = 64 levels)"``: the message part naming the limit."""
        return f"{what} (limit {self})"


DOCUMENT_BYTES = Limit(
    "max_document_bytes", 1 << 20, "bytes",
    "site profiles, service descriptions and Bedrock JSON configs: the largest shipped profile "
    "is under 5 KB, a Bedrock config of 1,000 providers about 300 KB")
REPORT_BYTES = Limit(
    "max_report_bytes", 16 << 20, "bytes",
    "margo-info, fi_info, hg_info and hwloc XML outputs: 'fi_info -v' of a node with many NICs "
    "or 'lstopo --of xml' of a large node is a few MB")
DEPTH = Limit(
    "max_depth", 64, "levels",
    "nesting of mappings and lists (YAML) or objects and arrays (JSON): a Bedrock config is about "
    "8 levels deep")
VALUES = Limit(
    "max_values", 200_000, "values",
    "scalars, mappings and lists of one document after YAML aliases are expanded (an alias bomb "
    "of a few hundred bytes expands to billions)")
ALIASES = Limit(
    "max_aliases", 256, "aliases",
    "YAML alias uses (*name) in one document")
INTEGER_DIGITS = Limit(
    "max_integer_digits", 20, "digits",
    "digits of an integer: every integer Bedrock, Margo and Argobots read is 64-bit "
    "(18446744073709551615 has 20 digits)")
NODE_CPUS = Limit(
    "max_node_cpus", 8192, "CPUs",
    "hardware threads of one node (sockets x cores_per_socket x threads_per_core), and the "
    "bound on CPU ids (0 to 8191): Linux's largest x86-64 configuration (MAXSMP) has "
    "NR_CPUS = 8192 (arch/x86/Kconfig, NR_CPUS_RANGE_END)")
NUMA_DOMAINS = Limit(
    "max_numa_domains", 1024, "domains",
    "NUMA domains of one node: Linux's largest configuration has NODES_SHIFT = 10 "
    "(arch/x86/Kconfig), 1,024 nodes")
NODE_XSTREAMS = Limit(
    "max_node_xstreams", 65_536, "xstreams",
    "Argobots execution streams of all processes of one node (processes_per_node x xstreams per "
    "process): each is an OS thread; 8 per CPU of the largest node")

ALL: tuple[Limit, ...] = (DOCUMENT_BYTES, REPORT_BYTES, DEPTH, VALUES, ALIASES, INTEGER_DIGITS,
                          NODE_CPUS, NUMA_DOMAINS, NODE_XSTREAMS)

MAX_CPU_ID = NODE_CPUS.value - 1
