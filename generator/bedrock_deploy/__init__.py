"""bedrock-deploy: plan, generate, launch and use Mochi Bedrock services from Python.

A site profile (a cluster described once) and a service description (which Bedrock providers
to run, with how many threads) make a :class:`DeploymentPlan` (every decision, with its
reason); :func:`generate` writes it as a deployment directory (Bedrock configs, Spack
environment, launch scripts) and returns a :class:`Deployment`; launching or submitting it
returns a :class:`RunningService` whose members can be queried and used through a
:class:`Client`, and which stops everything it started when its ``with`` block ends.

Example (this host, site ``local``)::

    import bedrock_deploy as bd

    svc = bd.service("kv", [bd.component("group", "flock"), bd.component("kv", "yokan")],
                     placement={"too_few_cores": "share"})   # share cores on a small host
    plan = bd.plan("local", svc, ppn=2)
    for choice in plan.choices:
        print(f"{choice.what}: {choice.value} -- {choice.why}")
    with bd.generate(plan, "deploy", force=True).launch() as running:
        for member in running.members:
            print(member.rank, member.address)
        db = running.database(rank=0)
        db.put("hello", b"world")
        assert db.get("hello") == b"world"

Loading: :func:`load_site`, :func:`load_service` (YAML/JSON files, dicts, a Bedrock config
such as ``mochi.bedrock.spec.ProcSpec(...).to_dict()``), :func:`service` and
:func:`component` (in code). Planning and writing: :func:`plan`, :func:`generate`,
:meth:`Deployment.open`. Running: :meth:`Deployment.launch`, :meth:`Deployment.submit`,
:meth:`Deployment.attach`, :func:`up`; :func:`rehearse` runs a deployment for any site on the
test cluster with its scheduler, launcher and fabric emulated. Talking to it: :class:`Client`,
:class:`ServiceHandle`, :class:`ServiceGroupHandle`, :class:`Database`. Errors:
:class:`InputError` (bad input, located problems), :class:`ServiceError` and
:class:`RpcError` (the service failed), :class:`EngineNotFound`.

The functions :func:`plan`, :func:`generate`, :func:`service`, :func:`up` and :func:`rehearse`
share their names
with modules of this package: ``bedrock_deploy.plan`` is always the function; reach those
modules' contents with ``from bedrock_deploy.generate import ...``. The API is imported on
first use, so ``import bedrock_deploy`` alone stays cheap (an engine rank imports this
package).
"""

from __future__ import annotations

import sys
import types

# typing is not imported at run time: importing this package is the first thing the command
# line does, before it can handle Ctrl-C, so it must take next to no time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _version() -> str:
    """The installed version, looked up on first use of ``__version__`` (importlib.metadata
    costs tens of milliseconds: the command line's entry point imports this package before it
    can handle Ctrl-C, so the package does nothing on import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bedrock-deploy")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+source"

# public name -> the module that defines it (imported on first use)
_EXPORTS: dict[str, str] = {
    "component": "bedrock_deploy.api",
    "generate": "bedrock_deploy.api",
    "load_service": "bedrock_deploy.api",
    "load_site": "bedrock_deploy.api",
    "plan": "bedrock_deploy.api",
    "service": "bedrock_deploy.api",
    "up": "bedrock_deploy.api",
    "Client": "bedrock_deploy.client",
    "Database": "bedrock_deploy.client",
    "Member": "bedrock_deploy.client",
    "ServiceGroupHandle": "bedrock_deploy.client",
    "ServiceHandle": "bedrock_deploy.client",
    "read_group_file": "bedrock_deploy.client",
    "Deployment": "bedrock_deploy.deployment",
    "SubmitCommand": "bedrock_deploy.deployment",
    "EngineNotFound": "bedrock_deploy.engine",
    "InputError": "bedrock_deploy.errors",
    "Problem": "bedrock_deploy.errors",
    "RpcError": "bedrock_deploy.errors",
    "ServiceError": "bedrock_deploy.errors",
    "JobStatus": "bedrock_deploy.launch.scheduler",
    "Choice": "bedrock_deploy.plan",
    "DeploymentPlan": "bedrock_deploy.plan",
    "NodeLayout": "bedrock_deploy.plan",
    "RankLayout": "bedrock_deploy.plan",
    "TransportChoice": "bedrock_deploy.plan",
    "XstreamPlan": "bedrock_deploy.plan",
    "BatchJob": "bedrock_deploy.running",
    "LocalScript": "bedrock_deploy.running",
    "RunningService": "bedrock_deploy.running",
    "ServiceProcess": "bedrock_deploy.running",
    "StopResult": "bedrock_deploy.running",
    "Component": "bedrock_deploy.service",
    "LoadedService": "bedrock_deploy.service",
    "Placement": "bedrock_deploy.service",
    "ServiceDescription": "bedrock_deploy.service",
    "Threads": "bedrock_deploy.service",
    "LoadedSite": "bedrock_deploy.sites",
    "rehearse": "bedrock_deploy.rehearse.run",
    "RehearsalReport": "bedrock_deploy.rehearse.run",
}

__all__ = [
    "BatchJob",
    "Choice",
    "Client",
    "Component",
    "Database",
    "Deployment",
    "DeploymentPlan",
    "EngineNotFound",
    "InputError",
    "JobStatus",
    "LoadedService",
    "LoadedSite",
    "LocalScript",
    "Member",
    "NodeLayout",
    "Placement",
    "Problem",
    "RankLayout",
    "RehearsalReport",
    "RpcError",
    "RunningService",
    "ServiceDescription",
    "ServiceError",
    "ServiceGroupHandle",
    "ServiceHandle",
    "ServiceProcess",
    "StopResult",
    "SubmitCommand",
    "Threads",
    "TransportChoice",
    "XstreamPlan",
    "__version__",
    "component",
    "generate",
    "load_service",
    "load_site",
    "plan",
    "read_group_file",
    "rehearse",
    "service",
    "up",
]

if TYPE_CHECKING:
    __version__: str
    from bedrock_deploy.api import (
        component,
        generate,
        load_service,
        load_site,
        plan,
        service,
        up,
    )
    from bedrock_deploy.client import (
        Client,
        Database,
        Member,
        ServiceGroupHandle,
        ServiceHandle,
        read_group_file,
    )
    from bedrock_deploy.deployment import Deployment, SubmitCommand
    from bedrock_deploy.engine import EngineNotFound
    from bedrock_deploy.errors import (
        InputError,
        Problem,
        RpcError,
        ServiceError,
    )
    from bedrock_deploy.launch.scheduler import JobStatus
    from bedrock_deploy.plan import (
        Choice,
        DeploymentPlan,
        NodeLayout,
        RankLayout,
        TransportChoice,
        XstreamPlan,
    )
    from bedrock_deploy.rehearse.run import RehearsalReport, rehearse
    from bedrock_deploy.running import (
        BatchJob,
        LocalScript,
        RunningService,
        ServiceProcess,
        StopResult,
    )
    from bedrock_deploy.service import (
        Component,
        LoadedService,
        Placement,
        ServiceDescription,
        Threads,
    )
    from bedrock_deploy.sites import LoadedSite
else:
    def __getattr__(name: str) -> Any:
        """Import a public name of the API on its first use (PEP 562)."""
        if name == "__version__":
            globals()[name] = _version()
            return globals()[name]
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The public names, loaded or not."""
        return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type: the first import of a submodule named like an API function
    (``bedrock_deploy.plan``, ``.generate``, ``.service``, ``.up``, ``.rehearse``) does not
    rebind the
    package attribute from the function to the module (the module stays in ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType) \
                and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
