"""Progress for long work: a rich bar on a terminal, periodic one-line updates in logs.

Library functions accept an optional ``progress`` callable; stages wrap loops with :func:`track`
so the library itself stays silent under ``TEMPLEARN_QUIET=1`` (tests) and prints plain lines
when stderr is not a terminal (Nextflow logs, CI).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if os.environ.get("TEMPLEARN_QUIET"):
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, console=None, transient=False)
        return
    last = 0.0
    start = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last > 10 or i == total:
            last = now
            of = f"/{total}" if total else ""
            # the time left at the rate so far: long steps say early how long they will take
            left = f", ~{duration((now - start) / i * (total - i))} left" if total and i < total else ""
            print(f"{description}: {i}{of} ({now - start:.0f} s{left})", file=sys.stderr, flush=True)


def say(message: str) -> None:
    """One line of what a long step is about to do (silent under ``TEMPLEARN_QUIET``)."""
    if not os.environ.get("TEMPLEARN_QUIET"):
        print(message, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
