"""A progress bar for anything that can run longer than a couple of seconds (an import, an export,
the report, the year-end jobs, a key rotation, a check, a backup): rich, on stderr, on a terminal
only; nothing under --json, cron or a pipe (stderr not a terminal)."""

import sys
import time
from contextlib import contextmanager

from vipcli.i18n import _


@contextmanager
def progress_bar(s, label: str, total: int | None = None, unit: str | None = None):
    """Yields advance(n) (n more done; `.reset()` starts again), or None when there is no
    terminal to draw on. `label` and `unit` are messages (N_), shown in the language in use;
    `total` None: a count and a rate, no bar's end."""
    if s.json or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    per_second = _("{unit}/s").format(unit=_(unit)) if unit else _("/s")
    bar = Progress(TextColumn(_(label)), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} " + per_second), TimeRemainingColumn(), transient=True,
                   console=Console(stderr=True))
    task = bar.add_task(_(label), total=total, rate="")
    started, done = time.perf_counter(), [0]

    def advance(n: int = 1) -> None:
        done[0] += n
        bar.update(task, advance=n, rate=f"{int(done[0] / max(time.perf_counter() - started, 1e-6)):,}")

    def reset() -> None:  # (an import read again, sorted)
        done[0] = 0
        bar.reset(task, rate="")

    advance.reset = reset
    with bar:
        yield advance
