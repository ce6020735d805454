"""Rich progress bars for long jobs, on stderr so stdout stays clean for results."""

from __future__ import annotations

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

Advance = Callable[..., None]
#: ``add(description, total) -> advance``: what long jobs take to draw their bars.
Bars = Callable[[str, int], Advance]


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Advance]]:
    """Yield ``add(description, total) -> advance``; each call adds one bar."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )

    started = False

    def add(description: str, total: int) -> Advance:
        nonlocal started
        if not started:  # start drawing only once there is a bar, so early errors print clean
            progress.start()
            started = True
        task = progress.add_task(description, total=total)

        def advance(*_: object) -> None:
            progress.advance(task)

        return advance

    try:
        yield add
    finally:
        if started:
            progress.stop()
