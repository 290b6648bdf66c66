"""Progress of a long run, one bar per phase, on stderr.

The engine reports through the small ``Progress`` protocol and never prints; the CLI chooses
``RichProgress`` (a rich bar per phase on a terminal) or ``NullProgress`` (``-q``, or stderr is not
a terminal: logs stay clean for CI and pipes). Messages go through ``logging``; events worth
keeping go to the state file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import IO, Protocol


class Phase(Protocol):
    def advance(self, amount: int = 1) -> None: ...


class Progress(Protocol):
    """``with progress.phase("creating instances", total=21) as p: ... p.advance()``."""

    def phase(self, description: str, total: int) -> contextlib.AbstractContextManager[Phase]: ...


class _NullPhase:
    def advance(self, amount: int = 1) -> None:
        pass


class NullProgress:
    """Shows nothing; records what it was told (tests read ``phases`` and ``notes``)."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Phase]:
        self.phases.append(description)
        yield _NullPhase()


class _RichPhase:
    def __init__(self, bar: object, task: object) -> None:
        self._bar = bar
        self._task = task
        self._lock = threading.Lock()

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self._bar.advance(self._task, amount)  # type: ignore[attr-defined]


class RichProgress:
    """A rich progress bar per phase on ``stream`` (stderr)."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console

        self._console = Console(file=stream, stderr=True)

    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Phase]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=self._console, transient=False) as bar:
            task = bar.add_task(description, total=max(total, 1))
            yield _RichPhase(bar, task)
            if total == 0:
                bar.advance(task, 1)


def make_progress(stream: IO[str], quiet: bool) -> Progress:
    """Bars on a terminal unless ``quiet``; nothing otherwise."""
    if quiet or not stream.isatty():
        return NullProgress()
    return RichProgress(stream)
