"""Rich progress bars for long jobs, on stderr so stdout stays clean for results.

Piped to a file or a CI log, a live bar draws nothing until the job ends, which looks like a
hang; there each bar prints a plain line instead ("consultations: 2/4"), at most one per
:data:`PLAIN_EVERY_S` seconds per bar and always the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Seconds between two plain progress lines of one bar when stderr is not a terminal.
PLAIN_EVERY_S = 5.0

Advance = Callable[..., None]
#: ``add(description, total) -> advance``: what long jobs take to draw their bars.
Bars = Callable[[str, int], Advance]


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Advance]]:
    """Yield ``add(description, total) -> advance``; each call adds one bar."""
    console = Console(stderr=True)
    if enabled and not console.is_terminal:
        yield _plain_lines(console)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )

    started = False

    def add(description: str, total: int) -> Advance:
        nonlocal started
        if not started:  # start drawing only once there is a bar, so early errors print clean
            progress.start()
            started = True
        task = progress.add_task(description, total=total)

        def advance(*_: object, steps: int = 1) -> None:
            progress.advance(task, steps)

        return advance

    try:
        yield add
    finally:
        if started:
            progress.stop()


def _plain_lines(console: Console) -> Bars:
    """``add`` for a console that is not a terminal: progress as occasional plain lines."""

    def add(description: str, total: int) -> Advance:
        done = 0
        last = 0.0

        def advance(*_: object, steps: int = 1) -> None:
            nonlocal done, last
            done = min(total, done + steps)
            now = time.monotonic()
            if done >= total or now - last >= PLAIN_EVERY_S:
                last = now
                console.print(
                    f"{description}: {done}/{total}", markup=False, highlight=False, soft_wrap=True
                )

        return advance

    return add
