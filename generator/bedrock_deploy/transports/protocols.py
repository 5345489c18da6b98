"""Mercury address specifiers: what a site profile's ``protocol`` means, and how fast it is.

A specifier is ``[class+]protocol[;layer]://[rest]``: ``ofi+tcp://``, ``cxi://`` (class left to
Mercury), ``verbs://mlx5_0`` (a domain), ``na+sm://``. ``ofi+tcp;ofi_rxm://ip:port`` is only what
comes back at run time (Mercury adds ``;ofi_rxm`` itself for tcp on libfabric < 1.18 and for
verbs: ``na_ofi_prov_name_to_type`` in
https://github.com/mercury-hpc/mercury/blob/v2.4.1/src/na/na_ofi.c), so we strip ``;layer`` and
pass the margo-info ``addr`` form (rule ``protocol-address``, docs/bedrock-config-rules.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# Speed tiers, lower is faster: the selection rule's first key after usability/scope (see
# selection.py). cxi (Slingshot) and gni (Aries) are the vendor HPC fabrics; verbs (InfiniBand,
# RoCE) and efa; opx/psm2/psm (Omni-Path); ucx (rc/ud/dc/all); then TCP/IP; the sockets provider
# is far slower than tcp (32 ms vs 31 us per fi_pingpong transfer here: docs/platform-notes.md,
# "libfabric"); shared memory reaches one node only.
TIERS: dict[str, int] = {
    "cxi": 0, "gni": 0,
    "verbs": 1, "efa": 1,
    "opx": 2, "psm2": 2,
    "ucx": 3,
    "tcp": 4,
    "sockets": 5,
    "sm": 6, "shm": 6,
    "unknown": 7,
}
TIER_ORDER_TEXT = "cxi/gni, then verbs/efa, opx/psm2, ucx, tcp, sockets"
INTRA_NODE_FAMILIES = frozenset({"sm", "shm"})

# libfabric core provider of each ofi protocol
OFI_PROVIDERS = {"tcp": "tcp", "verbs": "verbs", "cxi": "cxi", "psm2": "psm2", "opx": "opx",
                 "gni": "gni", "efa": "efa", "sockets": "sockets", "shm": "shm", "psm3": "psm3"}
# Spack libfabric 'fabrics=' values each needs:
# mochi-hpc-experiments/platform-configurations@7b2a291 README.md (per-network snippets) and
# ANL/JLSE/README.md (ofi+tcp with fabrics=tcp,rxm)
DEFAULT_FABRICS: dict[str, tuple[str, ...]] = {
    "tcp": ("tcp", "rxm"), "verbs": ("rxm", "verbs"), "cxi": ("cxi",), "psm2": ("psm2",),
    "opx": ("opx",), "gni": ("gni",), "efa": ("efa",), "sockets": ("sockets",),
    "shm": ("shm",),
}
# Mercury tries its plugins in this order for a class-less specifier (mercury na.c plugin table)
CLASS_ORDER = ("na", "ofi", "ucx", "bmi", "psm", "psm2")


@dataclass(frozen=True)
class ProtocolSpec:
    given: str  # as written in the profile
    na_class: str | None  # "ofi", "na", "ucx", ...; None when Mercury picks ("cxi://")
    proto: str  # "tcp", "cxi", "verbs", "sm", "rc", ...
    rest: str  # after "://": a domain/NIC ("mlx5_0", "cxi0") or host:port
    layer: str | None  # ";ofi_rxm" stripped from the scheme, if any

    @property
    def scheme(self) -> str:
        return f"{self.na_class}+{self.proto}" if self.na_class else self.proto

    @property
    def address(self) -> str:
        """The margo-info ``addr`` form, e.g. ``ofi+tcp://``: what margo-info rows are keyed by."""
        return f"{self.scheme}://"

    @property
    def normalized(self) -> str:
        """What we pass to Bedrock / put in ``mercury.address``: no ``;layer``, rest kept."""
        return f"{self.scheme}://{self.rest}"

    @property
    def effective_class(self) -> str | None:
        """The NA class Mercury will use."""
        if self.na_class:
            return self.na_class
        if self.proto == "sm":
            return "na"
        if self.proto in OFI_PROVIDERS:
            return "ofi"
        return None

    @property
    def family(self) -> str:
        cls, proto = self.effective_class, self.proto
        if cls == "ucx":
            return "tcp" if proto == "tcp" else "ucx"
        if proto in ("psm", "psm2"):
            return "psm2"
        if proto == "sm":
            return "sm"
        if proto in TIERS:
            return proto
        return "unknown"

    @property
    def ofi_provider(self) -> str | None:
        """libfabric core provider, when Mercury goes through libfabric."""
        if self.effective_class == "ofi":
            return OFI_PROVIDERS.get(self.proto)
        return None

    def margo_info_addresses(self) -> tuple[str, ...]:
        """margo-info ``addr`` rows that show whether this specifier initialises, best first."""
        if self.na_class:
            return (self.address,)
        return (self.address, *(f"{c}+{self.proto}://" for c in CLASS_ORDER))


def parse_protocol(protocol: str) -> ProtocolSpec:
    scheme, _, rest = protocol.partition("://")
    base, sep, layer = scheme.partition(";")
    na_class, plus, proto = base.partition("+")
    if not plus:
        na_class, proto = "", base
    return ProtocolSpec(given=protocol, na_class=na_class or None, proto=proto, rest=rest,
                        layer=f";{layer}" if sep else None)
