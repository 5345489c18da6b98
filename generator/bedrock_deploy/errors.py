"""The exceptions of the public API.

Two kinds of failure, told apart by type:

* :class:`InputError` (from :mod:`bedrock_deploy.diagnostics`): bad input, a site profile, a
  service description, a Bedrock config, a deployment directory or an argument. It carries the
  located problems the command line prints (``file:line:column: error: key.path: message`` and a
  hint); nothing was written or started.
* :class:`ServiceError`: the input was fine but the service did not come up, ended by itself or
  did not answer: what happened, a hint, and the end of the relevant log.
  :class:`RpcError` is the :class:`ServiceError` of one remote call (which member, which call).

Example::

    import bedrock_deploy as bd

    try:
        bd.load_service({"name": "kv", "components": [{"name": "kv", "type": "yokn"}]})
    except bd.InputError as err:
        for problem in err.problems:
            print(problem.format())   # <service>: error: components[0]: no Bedrock module ...
"""

from __future__ import annotations

from bedrock_deploy.diagnostics import InputError, Problem

__all__ = ["InputError", "Problem", "RpcError", "ServiceError"]


class ServiceError(RuntimeError):
    """A service did not come up, stopped by itself, or misbehaved (not bad input).

    ``hint`` says what to do, ``details`` holds the end of the log that explains it.

    Example::

        try:
            running = deployment.launch(timeout=30)
        except bd.ServiceError as err:
            print(err, err.hint, err.details, sep="\\n")
    """

    def __init__(self, message: str, *, hint: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.hint = hint
        self.details = details

    def format(self) -> str:
        """The message, then the hint and the details, as the command line prints them."""
        text = f"error: {self}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        if self.details:
            text += f"\n{self.details}"
        return text


class RpcError(ServiceError):
    """A remote call to one member failed (refused, timed out, or the provider said no).

    ``address`` is the member's address, ``call`` the operation (``"query"``, ``"put"``, ...).

    Example::

        try:
            db.get(b"key")
        except bd.RpcError as err:
            print(err.address, err.call, err)
    """

    def __init__(self, message: str, *, address: str, call: str,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.address = address
        self.call = call
