"""A progress bar on stderr for long loops (decoding, downloading)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

_PROGRESS_AFTER = 500  # items: below this a bar would only flicker


@contextmanager
def progress(total: int, description: str, unit_bytes: bool = False) -> Iterator[Callable[[int], None]]:
    """A transient rich progress bar on stderr for long loops; a no-op for short ones."""
    if total < (1 << 20 if unit_bytes else _PROGRESS_AFTER):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    counter = DownloadColumn() if unit_bytes else MofNCompleteColumn()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        counter,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
