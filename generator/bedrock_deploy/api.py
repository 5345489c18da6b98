"""The public functions: load inputs, plan, generate, and bring a service up on this host.

The whole path, through the API only::

    import bedrock_deploy as bd

    site = bd.load_site("local")                         # this host, probed
    service = bd.load_service("share/examples/kv-service.yaml")
    plan = bd.plan(site, service, ppn=2)                 # every decision, nothing written
    deployment = bd.generate(plan, "deploy")             # the directory, all or nothing
    with deployment.launch() as running:                 # returns once every rank answers
        for report in running.query():
            print(report["bedrock_engine"]["rank"], report["bedrock_engine"]["pid"])
        db = running.database(rank=0)
        db.put("hello", b"world")
    # the service is stopped: every engine finalized, no process of the run left

Bad input raises :class:`~bedrock_deploy.errors.InputError` with the problems the command line
prints (file, line, column, key path, hint); a service that does not come up raises
:class:`~bedrock_deploy.errors.ServiceError`. Nothing here exits the interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from bedrock_deploy.deployment import Deployment
from bedrock_deploy.diagnostics import SourceLocation
from bedrock_deploy.generate import build_plan, make_inputs, write_deployment
from bedrock_deploy.plan import DeploymentPlan
from bedrock_deploy.running import DEFAULT_READY_TIMEOUT, RunningService
from bedrock_deploy.service import (
    Component,
    LoadedService,
    MargoOptions,
    Placement,
    ServiceDescription,
    Threads,
    load_service_data,
)
from bedrock_deploy.service import load_service as _load_service_file
from bedrock_deploy.sites import LoadedSite
from bedrock_deploy.sites import load_site as _load_site_file
from bedrock_deploy.validation import validate_model

_M = TypeVar("_M", bound=BaseModel)

__all__ = ["component", "generate", "load_service", "load_site", "plan", "service", "up"]


@runtime_checkable
class SupportsToDict(Protocol):
    """Anything with ``to_dict()``, such as ``mochi.bedrock.spec.ProcSpec``."""

    def to_dict(self) -> dict[str, Any]: ...


SiteSource = str | Path | LoadedSite
ServiceSource = str | Path | Mapping[str, Any] | ServiceDescription | LoadedService | SupportsToDict


def load_site(name_or_path: SiteSource) -> LoadedSite:
    """Load a site profile: a shipped profile's name (``"local"``, ``"polaris"``, ...) or a
    profile file; ``extends`` is merged and ``node: probe`` probes this host. Raises
    InputError with located problems.

    Example::

        site = bd.load_site("polaris")
        print(site.profile.scheduler.type, site.files)   # pbs [.../polaris.yaml, ...]
    """
    if isinstance(name_or_path, LoadedSite):
        return name_or_path
    return _load_site_file(name_or_path)


def load_service(source: ServiceSource, *, name: str | None = None) -> LoadedService:
    """Load a service: a YAML service description or Bedrock JSON config file, a dict of
    either, a :class:`ServiceDescription`, or an object with ``to_dict()`` giving a Bedrock
    config (``mochi.bedrock.spec.ProcSpec``). A Bedrock config keeps its providers and
    libraries; its ``margo`` section is planned again for the site. ``name`` names (or
    renames) the service. Raises InputError with located problems (for Python data: the key
    path, there are no lines).

    Example::

        svc = bd.load_service("share/examples/kv-service.yaml")
        svc = bd.load_service({"name": "kv", "components": [{"name": "kv", "type": "yokan"}]})
        svc = bd.load_service(ProcSpec(margo="na+sm", ...).to_dict(), name="kv")
        print(svc.service.name, [c.name for c in svc.service.components])
    """
    if isinstance(source, LoadedService):
        return source if name is None else load_service_data(
            source.service.model_dump(mode="json", exclude_none=True), label=source.file, name=name)
    if isinstance(source, ServiceDescription):
        return load_service_data(source.model_dump(mode="json", exclude_none=True),
                                 label="<service>", name=name)
    if isinstance(source, str | Path):
        loaded = _load_service_file(source)
        return loaded if name is None else load_service_data(
            loaded.service.model_dump(mode="json", exclude_none=True), label=loaded.file,
            name=name)
    if isinstance(source, Mapping):
        return load_service_data(dict(source), name=name)
    if isinstance(source, SupportsToDict):
        return load_service_data(source.to_dict(), label=f"<{type(source).__name__}>",
                                 name=name)
    raise TypeError(f"load_service takes a path, a dict, a ServiceDescription or an object "
                    f"with to_dict(), not {type(source).__name__}")


def component(name: str, type: str, *, provider_id: int | None = None,
              pool: str | None = None, rank0_only: bool = False,
              config: Mapping[str, Any] | None = None,
              dependencies: Mapping[str, Any] | None = None,
              tags: Sequence[str] = (), library: str | None = None) -> Component:
    """One provider of a service, checked now (InputError naming the bad argument).

    ``type`` is a Bedrock module type (``flock``, ``yokan``, ``abt_io``, ``warabi``, ... or any
    type with ``library``); ``pool`` is ``"rpc"`` or ``"io"``; ``rank0_only`` runs it on MPI
    rank 0 only; ``config`` is the provider's own config (defaults per type when empty).

    Example::

        kv = bd.component("kv", "yokan", config={"database": {"type": "map"}})
    """
    data: dict[str, Any] = {"name": name, "type": type, "rank0_only": rank0_only,
                            "config": dict(config or {}),
                            "dependencies": dict(dependencies or {}), "tags": list(tags)}
    for key, value in (("provider_id", provider_id), ("pool", pool), ("library", library)):
        if value is not None:
            data[key] = value
    return _checked(Component, data, "<component>")


def _checked(model: type[_M], data: dict[str, Any], label: str) -> _M:
    from dataclasses import replace

    from bedrock_deploy.diagnostics import InputError

    try:
        return validate_model(model, data, lambda _p: SourceLocation(label, 1, 1))
    except InputError as err:
        raise InputError([replace(p, location=None, file=label) for p in err.problems]) from None


def service(name: str, components: Sequence[Component | Mapping[str, Any]] = (), *,
            bedrock_config: Mapping[str, Any] | SupportsToDict | str | Path | None = None,
            nodes: int = 1, processes_per_node: int = 1,
            threads: Threads | Mapping[str, Any] | None = None,
            placement: Placement | Mapping[str, Any] | None = None,
            margo: MargoOptions | Mapping[str, Any] | None = None,
            extra_libraries: Sequence[str] = (), description: str = "") -> LoadedService:
    """A service description built in code (the same fields as the YAML form), checked as a
    file would be; ready for :func:`plan`. The providers are ``components``, or those of
    ``bedrock_config``: a Bedrock config (a dict, an object with ``to_dict()`` such as
    ``mochi.bedrock.spec.ProcSpec``, or a JSON file) whose ``margo`` section is planned again
    with ``threads`` and ``placement``.

    Example::

        svc = bd.service("kv", [bd.component("group", "flock"),
                                bd.component("kv", "yokan")],
                         processes_per_node=2, threads={"rpc": 1, "progress": "dedicated"})
        svc = bd.service("kv", bedrock_config=proc_spec.to_dict(),
                         placement={"too_few_cores": "share"})
        plan = bd.plan("local", svc)
    """
    def plain(value: Any) -> Any:
        return value.model_dump(mode="json", exclude_defaults=True) \
            if hasattr(value, "model_dump") else dict(value)

    data: dict[str, Any] = {
        "name": name, "description": description, "nodes": nodes,
        "processes_per_node": processes_per_node,
        "extra_libraries": list(extra_libraries)}
    if components or bedrock_config is None:
        data["components"] = [plain(c) for c in components]
    if bedrock_config is not None:
        data["bedrock_config"] = str(bedrock_config) if isinstance(bedrock_config, str | Path) \
            else bedrock_config.to_dict() if isinstance(bedrock_config, SupportsToDict) \
            else dict(bedrock_config)
    for key, value in (("threads", threads), ("placement", placement), ("margo", margo)):
        if value is not None:
            data[key] = plain(value)
    return load_service_data(data, label="<service>")


def plan(site: SiteSource, service: ServiceSource, *, nodes: int | None = None,
         ppn: int | None = None, margo_info: str | Path | None = None,
         fi_info: str | Path | None = None, transport: str | None = None,
         account: str | None = None, queue: str | None = None,
         for_job: bool = True) -> DeploymentPlan:
    """Every decision of a deployment, validated, nothing written: transport (from the site
    and the saved ``margo_info``/``fi_info`` reports of a compute node, or this host's engine
    for an embedded-engine site), the node layout, one Bedrock config per local rank, and each
    choice with its reason. ``nodes``/``ppn`` override the service's counts; ``transport``
    names a transport of the site to use; ``account`` is the project the job is charged to
    (required by sites whose scheduler rejects jobs without one), ``queue`` a queue of the
    site's table instead of the one chosen by node count; ``for_job=False`` plans the layout
    only (no job will be written: no account or queue needed). Raises InputError with located
    problems.

    Example::

        p = bd.plan("aurora", "share/examples/mofka-like.yaml", nodes=16, ppn=8,
                    margo_info="mi.txt", account="MYPROJECT")
        print(p.transport.protocol, p.transport.reason)
        print(p.configs[0]["margo"]["argobots"]["xstreams"])
    """
    inputs = make_inputs(load_site(site), load_service(service), nodes=nodes, ppn=ppn,
                         margo_info=margo_info, fi_info=fi_info, transport=transport,
                         account=account, queue=queue, for_job=for_job)
    return build_plan(inputs)[0]


def generate(plan: DeploymentPlan, directory: str | Path, force: bool = False) -> Deployment:
    """Write the deployment directory of ``plan``: configs, Spack environment, launch scripts,
    layout picture, manifest. All or nothing (a temporary directory renamed into place);
    ``force`` replaces an earlier deployment atomically. Raises InputError if ``directory``
    exists (without ``force``) or is not a deployment.

    Example::

        deployment = bd.generate(bd.plan("local", svc, ppn=2), "deploy", force=True)
        print(deployment.directory, deployment.script)
    """
    write_deployment(plan, directory, force=force)
    return Deployment(directory, plan=plan)


def up(service: ServiceSource | None = None, *, site: SiteSource = "local", ppn: int = 2,
       directory: str | Path | None = None, force: bool = False,
       transport: str | None = None,
       timeout: float | None = DEFAULT_READY_TIMEOUT) -> RunningService:
    """Generate a deployment for this host and launch it: the running service, once every
    rank answers. ``site`` must start engines here (scheduler ``none``, engine ``embedded``:
    ``local``); ``service`` defaults to the shipped key/value example; ``directory``
    defaults to a new ``./deployments/up-<site>-<UTC time>``.

    Example::

        with bd.up(ppn=2) as running:
            running.database(rank=1).put("k", b"v")
            print(running.deployment.directory)
    """
    from bedrock_deploy.up import (
        check_engine,
        check_mpi,
        check_site,
        default_output,
        default_service,
    )

    loaded = check_site(load_site(site))
    check_engine()
    p = plan(loaded, service if service is not None else default_service(), nodes=1, ppn=ppn,
             transport=transport)
    out = Path(directory) if directory is not None else default_output(loaded.profile.name)
    deployment = generate(p, out, force=force)
    check_mpi(p, deployment.directory)
    return deployment.launch(timeout=timeout)
