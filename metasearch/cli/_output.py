"""Output helpers shared by the CLI commands: JSON, errors, rich tables, quiet native logs.

Everything here imports only the standard library, typer and
:mod:`metasearch.errors` at module level (rich and the local-model code are
imported when used), so the command modules can import it while ``--help``
stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from metasearch.errors import MetasearchError

__all__ = [
    "archive_table",
    "escape",
    "friendly_errors",
    "print_json",
    "quiet_native_logs",
    "sandbox_notices",
    "table_console",
]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, as a scheduler sends to preempt a job: stopped like Ctrl-C, nothing lost."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` in the main thread (Python's default dies at
    once: no checkpoint, an MLflow run left RUNNING, the llama.cpp servers not stopped)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_signum: int, _frame: Any) -> None:
        raise Terminated()

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def friendly_errors(fn: F) -> F:
    """Turn user errors into one printed paragraph and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_stops():
                return fn(*args, **kwargs)
        except Terminated:
            _fail("terminated (SIGTERM); everything completed so far is saved (a campaign "
                  "continues with --resume).", 143)
        except MetasearchError as exc:
            _fail(str(exc), getattr(exc, "exit_code", 2))
        except OSError as exc:  # a full disk outside a campaign (eval's cache, an export)
            from metasearch.diskfull import disk_full, is_disk_full

            if not is_disk_full(exc):
                raise
            failed = disk_full(exc.filename or "a file", exc)
            _fail(str(failed), failed.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; everything completed so far is saved.", 130)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def sandbox_notices() -> Iterator[None]:
    """Show the sandbox's fallback warning as one visible notice, not a warnings dump.

    ``auto`` warns (``SandboxWarning``) when bwrap does not work and it must use the
    weaker ``unshare`` jail; mode ``none`` prints its own loud warning already.
    """
    import warnings

    from rich.console import Console

    from metasearch.execution.sandbox.types import SandboxWarning

    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
             line: Any = None) -> None:
        if not issubclass(category, SandboxWarning):
            previous(message, category, filename, lineno, file, line)
        elif not str(message).startswith("SANDBOX DISABLED"):
            Console(stderr=True).print(
                f"[bold yellow]notice:[/] {escape(str(message))} `metasearch doctor` says what "
                "is missing and the command that fixes it.", highlight=False, soft_wrap=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def quiet_native_logs(cache_dir: Path | None = None) -> None:
    """Keep llama.cpp's per-request log lines (written to fd 1) off the terminal.

    They go to ``<cache>/logs/llama-server.log``; Python's stdout is unchanged.
    Only the CLI does this, once per process, before a local model can start.
    """
    from metasearch.llm.local import divert_native_stdout
    from metasearch.llm.settings import default_cache_dir

    divert_native_stdout((cache_dir or default_cache_dir()) / "logs" / "llama-server.log")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def escape(text: str) -> str:
    """Model-written names and reasons as literal text: `[no-llm-call]` is not rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def archive_table(records: Any, *, title: str) -> Any:
    """One line per candidate; long names and reasons are cut with an ellipsis."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption="scores in %, 95% bootstrap CI, n tasks")
    table.add_column("id", no_wrap=True, min_width=7)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=22)
    table.add_column("gen", no_wrap=True, min_width=3)
    table.add_column("status", no_wrap=True, min_width=7)
    table.add_column("validation", no_wrap=True, min_width=16)
    table.add_column("test", no_wrap=True, min_width=16)
    table.add_column("calls", no_wrap=True, justify="right", min_width=5)
    if any(r.cost_usd for r in records):
        table.add_column("cost", no_wrap=True, justify="right", min_width=7)
    table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=48)
    for r in records:
        cells = [r.id, Text(r.name), "seed" if r.generation == "initial" else str(r.generation),
                 r.status, _short(r.val), _short(r.test), str(r.calls)]
        if len(table.columns) == 9:
            cells.append(f"${r.cost_usd:.4f}")
        cells.append(Text(" ".join((r.reason or "").split())))  # `[code]` is not markup
        table.add_row(*cells)
    return table


def table_console() -> Any:
    """A console for wide tables: a terminal's own width, else 180 columns (logs, pipes)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=180)


def _short(s: Any) -> str:
    if s is None:
        return "-"
    return f"{100 * s.mean:.1f} [{100 * s.ci_low:.0f},{100 * s.ci_high:.0f}] n={s.n}"
