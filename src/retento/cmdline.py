"""What every command-line module uses: the consoles, failing with a message, and the App of the running command.

The `retento` root command (`retento.cli`) hands the App factory over (`use`) before any command runs, so a
domain's commands get the application without importing the module that builds it (which imports them)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from retento.core.errors import DomainError

if TYPE_CHECKING:
    from retento.app import App

console = Console()
err = Console(stderr=True)
_factory: list[Callable[[], App]] = []  # set by the root command (`use`)


def use(factory: Callable[[], App]) -> None:
    """How the commands of this process build their App (`retento.cli` passes `bootstrap`)."""
    _factory[:] = [factory]


def open_app(*, log: bool = True) -> App:
    """A new App for the running command (the caller closes it or lets the process end); `log`: INFO logging
    on stderr."""
    if not _factory:
        raise RuntimeError("not run from the `retento` command: it hands the application factory over (`use`)")
    factory = _factory[0]
    if log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return factory()


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run_service(fn: Callable[[], Any]) -> Any:
    """Call fn; a DomainError becomes a message naming the field and a non-zero exit."""
    try:
        return fn()
    except DomainError as exc:
        fail(exc.message)
