"""Progress of a long run, one bar per phase, on stderr.

The engine reports through the small ``Progress`` protocol and never prints; the CLI chooses
``RichProgress`` (a rich bar per phase on a terminal), ``LineProgress`` (stderr is not a terminal:
one plain line when a phase starts and one when it ends, with its duration, so CI logs and pipes
show what a long run is doing without bar redraws) or ``NullProgress`` (``-q``). Messages go through
``logging``; events worth keeping go to the state file.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
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


class _CountingPhase:
    def __init__(self) -> None:
        self.done = 0
        self._lock = threading.Lock()

    def advance(self, amount: int = 1) -> None:
        with self._lock:
            self.done += amount


class LineProgress:
    """A line when a phase starts and one when it ends (``creating machines: 3/3 in 41 s``)."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock

    def _say(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Phase]:
        started = self._clock()
        self._say(f"{description} ...")
        counted = _CountingPhase()
        yield counted
        done = f"{counted.done}/{total} " if total > 1 else ""
        self._say(f"{description}: {done}done in {self._clock() - started:.0f} s")


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
    """Nothing when ``quiet``; bars on a terminal; a line per phase start and end otherwise."""
    if quiet:
        return NullProgress()
    if not stream.isatty():
        return LineProgress(stream)
    return RichProgress(stream)
