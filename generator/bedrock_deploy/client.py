"""Talking to a running service: one member, the whole group, a key/value database.

Named after Mochi's Python clients (``mochi.bedrock.client``: ``Client``,
``make_service_handle``, ``make_service_group_handle``, ``ServiceHandle.config``;
``mochi.yokan.client``: ``Database`` with ``put``/``get``/``erase``), see
https://github.com/mochi-hpc/mochi-bedrock/blob/v0.16.1/python/mochi/bedrock/client.py, and
built on the compiled engine's bindings (``bedrock_deploy._engine.Client``, native/README.md).

* :class:`Client`: an RPC client for one protocol (``na+sm``, ``ofi+tcp``, ...).
* :class:`ServiceHandle`: one member (an engine) at an address: its running configuration
  (``config``, the ``query`` RPC), ``ping``, ``shutdown``, its providers, a :class:`Database`.
* :class:`ServiceGroupHandle`: every member of a flock group, from its group file.
* :class:`Database`: ``put``/``get``/``erase``/``list`` through a key/value (yokan) provider.

Example::

    import bedrock_deploy as bd

    client = bd.Client("na+sm")
    group = client.make_service_group_handle("deploy/run/group.json")
    for member in group:
        print(member.address, member.config["bedrock_engine"]["rank"])
    db = group[0].database()          # the member's only yokan provider
    db.put("answer", b"42")
    assert db.get("answer") == b"42"

A client (and the handles made from it) is meant for one thread at a time; make one client per
thread that calls the service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_deploy.errors import RpcError, ServiceError

__all__ = ["Client", "Database", "Member", "ServiceGroupHandle", "ServiceHandle",
           "read_group_file"]

KV_TYPE = "yokan"
GROUP_TYPE = "flock"
DEFAULT_TIMEOUT = 5.0  # seconds an RPC may take before it fails


@dataclass(frozen=True)
class Member:
    """One member of a service's group: its rank, address and flock provider id.

    ``rank`` is the member's position in the group file, which is its MPI rank when flock
    bootstraps through MPI (rank 0 writes the file in rank order).

    Example::

        for m in running.members:
            print(m.rank, m.address)   # 0 na+sm://12345-0
    """

    rank: int
    address: str
    provider_id: int = 0


def read_group_file(path: str | Path) -> list[Member]:
    """The members of a flock group file (``{"members": [{"address", "provider_id"}]}``);
    [] while it is absent or being written.

    Example::

        members = bd.read_group_file("deploy/run/group.json")
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        return []
    out: list[Member] = []
    for m in data["members"]:
        if isinstance(m, dict) and isinstance(m.get("address"), str):
            pid = m.get("provider_id", 0)
            out.append(Member(rank=len(out), address=m["address"],
                              provider_id=pid if isinstance(pid, int) else 0))
    return out


def _as_bytes(value: bytes | bytearray | memoryview | str, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"a {what} is bytes or str, not {type(value).__name__}")


class Client:
    """An RPC client of the compiled engine for one protocol.

    ``protocol`` is a Mercury protocol (``"na+sm"``, ``"ofi+tcp"``) or an address of that
    protocol (its scheme is used); ``timeout`` (seconds) bounds every call. Failed calls raise
    :class:`~bedrock_deploy.errors.RpcError`. Mochi's ``make_service_handle`` and
    ``make_service_group_handle`` are here under the same names (and the shorter
    :meth:`service` and :meth:`group`).

    Example::

        with bd.Client("na+sm") as client:
            print(client.service("na+sm://12345-0").config["providers"])
    """

    def __init__(self, protocol: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        from bedrock_deploy.engine import bindings

        self.protocol = protocol.split("://")[0]
        try:
            self._raw: Any = bindings().Client(self.protocol)
        except (RuntimeError, ValueError) as exc:
            raise ServiceError(f"cannot make a {self.protocol!r} client: {exc}",
                               hint="use the deployment's protocol (Deployment.protocol)"
                               ) from None
        self.timeout = timeout

    @property
    def timeout(self) -> float:
        """Seconds a call may take before it fails with RpcError."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = float(seconds)
        self._raw.set_timeout_ms(max(1, int(seconds * 1000)))

    def call(self, address: str, name: str, *args: Any) -> Any:
        """Run one binding call (``query``, ``put``, ...) with errors as RpcError.

        Example::

            report = client.call("na+sm://12345-0", "query", 0)
        """
        if self._raw is None:
            raise ServiceError("this client was closed", hint="make a new Client")
        try:
            return getattr(self._raw, name)(address, *args)
        except (RuntimeError, OSError, ValueError) as exc:
            raise RpcError(f"{name} on {address} failed: {exc}", address=address,
                           call=name) from None

    @property
    def last_handler(self) -> dict[str, int]:
        """The OS thread id and CPU that ran the last successful call's handler."""
        return dict(self._raw.last_handler)

    def service(self, address: str) -> ServiceHandle:
        """A handle on the member at ``address``.

        Example::

            member = client.service("na+sm://12345-0")
        """
        return ServiceHandle(self, address)

    make_service_handle = service

    def group(self, group: str | Path | Sequence[Member] | Sequence[str]) -> ServiceGroupHandle:
        """A handle on every member of a group: its flock group file, or members/addresses.

        Example::

            group = client.group("deploy/run/group.json")
            print(len(group), [m.address for m in group])
        """
        return ServiceGroupHandle(self, group)

    make_service_group_handle = group

    def close(self) -> None:
        """Release the connections (the client cannot be used afterwards)."""
        self._raw = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.protocol!r}, timeout={self._timeout:g})"


class ServiceHandle:
    """One member of a service: an engine at an address (Mochi's ``ServiceHandle``).

    Example::

        member = client.service(running.members[0].address)
        member.ping()
        print(member.config["margo"]["argobots"]["xstreams"])
        db = member.database()
    """

    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.address = address
        self._providers: list[dict[str, Any]] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The member's running configuration, fetched now (the ``query`` RPC); the embedded
        engine adds ``bedrock_engine`` (pid, rank, size, each xstream's OS thread and CPUs)."""
        report: dict[str, Any] = self.client.call(self.address, "query", 0)
        self._providers = list(report.get("providers", []))
        return report

    def query(self) -> dict[str, Any]:
        """Same as :attr:`config` (the ``query`` RPC), as a call.

        Example::

            print(member.query()["bedrock_engine"]["pid"])
        """
        return self.config

    def ping(self) -> dict[str, int]:
        """An empty RPC; returns the OS thread id and CPU that answered it.

        Example::

            print(member.ping())   # {'os_thread_id': 4242, 'cpu': 1}
        """
        return dict(self.client.call(self.address, "ping", 0))

    def shutdown(self) -> None:
        """Ask the engine to finalize (as ``bedrock-shutdown`` does).

        Example::

            member.shutdown()
        """
        self.client.call(self.address, "shutdown", 0)

    def providers(self, type: str | None = None) -> list[dict[str, Any]]:
        """The member's providers (name, type, provider_id, ...), optionally of one type.

        Example::

            print([p["name"] for p in member.providers("yokan")])
        """
        if self._providers is None:
            _ = self.config
        assert self._providers is not None
        return [p for p in self._providers if type is None or p.get("type") == type]

    def provider_id(self, provider: str | int | None, type: str) -> int:
        """The id of a provider of ``type`` given by name or id (None: the only one).

        Example::

            kv_id = member.provider_id(None, "yokan")
        """
        if isinstance(provider, int) and not isinstance(provider, bool):
            return provider
        found = self.providers(type)
        if provider is not None:
            found = [p for p in found if p.get("name") == provider]
        if len(found) != 1:
            names = ", ".join(str(p.get("name")) for p in self.providers(type)) or "none"
            what = f"no {type} provider named {provider!r}" if provider is not None and \
                not found else (f"no {type} provider" if not found else
                                f"{len(found)} {type} providers ({names})")
            raise ServiceError(f"{what} on {self.address}",
                               hint=f"name one of this member's {type} providers: {names}")
        return int(found[0].get("provider_id", 0))

    def database(self, provider: str | int | None = None) -> Database:
        """The key/value (yokan) provider ``provider`` (name or id; None: the only one).

        Example::

            db = member.database("kv")
            db.put("k", "v")
        """
        return Database(self, self.provider_id(provider, KV_TYPE))

    def flock_view(self, provider: str | int | None = None) -> dict[str, Any]:
        """The group as this member's flock provider sees it (``{"members": [...]}``).

        Example::

            print(len(member.flock_view()["members"]))
        """
        pid = self.provider_id(provider, GROUP_TYPE)
        return dict(self.client.call(self.address, "flock_view", pid))

    def __repr__(self) -> str:
        return f"ServiceHandle({self.address!r})"


class ServiceGroupHandle:
    """Every member of a group (Mochi's ``ServiceGroupHandle``): from a flock group file, or a
    list of members or addresses. Indexing gives a :class:`ServiceHandle` by rank.

    Example::

        group = client.group("deploy/run/group.json")
        configs = group.config                 # address -> running configuration
        for member in group:
            member.database().put("hello", member.address)
    """

    def __init__(self, client: Client,
                 group: str | Path | Sequence[Member] | Sequence[str]) -> None:
        self.client = client
        self.group_file: Path | None = None
        if isinstance(group, str | Path):
            self.group_file = Path(group)
            self._members = read_group_file(self.group_file)
        else:
            self._members = [m if isinstance(m, Member) else Member(rank=i, address=str(m))
                             for i, m in enumerate(group)]

    def refresh(self) -> None:
        """Read the group file again (members that joined or left since).

        Example::

            group.refresh()
        """
        if self.group_file is not None:
            self._members = read_group_file(self.group_file)

    @property
    def members(self) -> list[Member]:
        """The members, in rank order."""
        return list(self._members)

    @property
    def size(self) -> int:
        """How many members the group has."""
        return len(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, rank: int) -> ServiceHandle:
        return ServiceHandle(self.client, self._members[rank].address)

    def __iter__(self) -> Iterator[ServiceHandle]:
        return (ServiceHandle(self.client, m.address) for m in self._members)

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """Every member's running configuration, by address (one ``query`` each)."""
        return {m.address: self.client.call(m.address, "query", 0) for m in self._members}

    def query(self) -> list[dict[str, Any]]:
        """Every member's running configuration, in rank order.

        Example::

            pids = [r["bedrock_engine"]["pid"] for r in group.query()]
        """
        return [self.client.call(m.address, "query", 0) for m in self._members]

    def shutdown(self) -> list[RpcError]:
        """Ask every member to finalize; returns the calls that failed (already gone, ...).

        Example::

            failed = group.shutdown()
        """
        failed: list[RpcError] = []
        for m in self._members:
            try:
                self.client.call(m.address, "shutdown", 0)
            except RpcError as err:
                failed.append(err)
        return failed

    def __repr__(self) -> str:
        where = str(self.group_file) if self.group_file else f"{len(self)} members"
        return f"ServiceGroupHandle({where})"


class Database:
    """A key/value (yokan ``map``) provider of one member: ``put``, ``get``, ``erase``,
    ``list``. Keys and values are bytes (a ``str`` is stored as UTF-8).

    Each member keeps its own database (the providers are not replicated): read a key back
    through the member that stored it.

    Example::

        db = running.database(rank=0)
        db.put("color", "blue")
        assert db.get("color") == b"blue"
        assert db.list("col") == [b"color"]
        assert db.erase("color") and db.get("color") is None
    """

    def __init__(self, member: ServiceHandle, provider_id: int) -> None:
        self.member = member
        self.provider_id = provider_id

    @property
    def address(self) -> str:
        """The member's address."""
        return self.member.address

    def _call(self, name: str, *args: Any) -> Any:
        return self.member.client.call(self.address, name, self.provider_id, *args)

    def put(self, key: bytes | str, value: bytes | str) -> None:
        """Store ``value`` under ``key`` (replacing what was there)."""
        self._call("put", _as_bytes(key, "key"), _as_bytes(value, "value"))

    def get(self, key: bytes | str) -> bytes | None:
        """The value stored under ``key``, or None."""
        value = self._call("get", _as_bytes(key, "key"))
        return None if value is None else bytes(value)

    def erase(self, key: bytes | str) -> bool:
        """Remove ``key``; True if it was there."""
        return bool(self._call("erase", _as_bytes(key, "key")))

    def list(self, prefix: bytes | str = b"", max_keys: int = 1000) -> list[bytes]:
        """Up to ``max_keys`` keys starting with ``prefix``, in key order."""
        return [bytes(k) for k in self._call("list", _as_bytes(prefix, "prefix"), max_keys)]

    def __contains__(self, key: bytes | str) -> bool:
        return self.get(key) is not None

    @property
    def last_handler(self) -> dict[str, int]:
        """The OS thread id and CPU of the engine thread that ran the last call."""
        return self.member.client.last_handler

    def __repr__(self) -> str:
        return f"Database({self.address!r}, provider_id={self.provider_id})"
