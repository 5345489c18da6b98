"""The one way commands make a rich console: no emoji codes, no automatic highlighting.

Rich replaces ``:name:`` by an emoji by default, so ``f.yaml:100:3`` printed through a default
console loses its location (``:100:`` is an emoji code). Text from inputs still goes through
:func:`bedrock_deploy.diagnostics.printable` (control characters) and is printed with
``markup=False`` or as a :class:`rich.text.Text` (no markup interpretation).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from bedrock_deploy.diagnostics import printable

__all__ = ["make_console", "printable"]


def make_console(*, stderr: bool = False, **options: Any) -> Console:
    """A :class:`rich.console.Console` with ``emoji=False`` and ``highlight=False``."""
    options.setdefault("highlight", False)
    options["emoji"] = False
    return Console(stderr=stderr, **options)
