"""The purchases import's time-order pass (time_order), in a process of its own for
a large file.

The rules must see a file's rows in time order, and checking that is one pass over the whole file
(0.8 s for 1,000,000 rows). Instead of making the import wait for it, the pass runs beside the
import, and the import asks for its answer before its first commit: a file out of order is then
rolled back, with nothing committed, and read again sorted. Most POS exports are in order.

    python -m vipcli.io.timeorder FILE COLUMN ENCODING   ->   one JSON line on stdout
"""

import json
import subprocess
import sys
from itertools import islice

from vipcli.dates import parse_when
from vipcli.errors import InvalidInput, VipError
from vipcli.io.purchase_rows import canonical_stamps
from vipcli.i18n import _


class Known:
    """An answer worked out already (a small file: the pass runs before the import)."""

    def __init__(self, path: str, index: int, encoding: str | None):
        self.answer = time_order(path, index, encoding)

    def __call__(self) -> tuple[bool, int]:
        return self.answer

    def abandon(self) -> None:
        pass


class Pending:
    """The pass in a process of its own: calling waits for (in time order, rows)."""

    def __init__(self, path: str, index: int, encoding: str | None):
        self.answer = None
        self.proc = subprocess.Popen([sys.executable, "-m", "vipcli.io.timeorder", str(path), str(index),
                                      encoding or ""], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def __call__(self) -> tuple[bool, int]:
        if self.answer is None:
            out, _errors = self.proc.communicate()
            try:
                reply = json.loads(out)
            except ValueError:
                raise VipError(_("the import's time-order pass stopped (exit {returncode}); nothing was committed, "
                                 "run the import again").format(
                                   returncode=self.proc.returncode), code="import_stopped") from None
            if "error" in reply:
                raise InvalidInput(reply["error"], code=reply["code"])
            self.answer = (reply["in_order"], reply["rows"])
        return self.answer

    def abandon(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def main() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle: it stops us

    path, index, encoding = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
    try:
        in_order, rows = time_order(path, index, encoding)
        reply = {"in_order": in_order, "rows": rows}
    except VipError as exc:
        reply = {"error": exc.message, "code": exc.code}
    print(json.dumps(reply))



class OutOfOrder(Exception):
    """The file turned out not to be in time order, before anything was committed."""


def time_order(path: str, index: int, encoding: str | None) -> tuple[bool, int]:
    """A quick first pass over the purchased_at texts (column `index`; ISO text sorts as time), a
    block at a time: (in time order, rows)."""
    from vipcli.io.readers import column_values

    last, count, ordered = "", 0, True
    for block in column_values(path, index, encoding):
        count += len(block)
        if not ordered:
            continue  # counting only
        if not canonical_stamps(block):
            block = [t for t in map(_sortable, block) if t]  # "": the row will be rejected
        if block and (block[0] < last or block != sorted(block)):
            ordered = False
        last = block[-1] if block else last
    return ordered, count


# An out-of-order file is sorted in runs of this many rows, each spooled to a temporary file, then
# merged: memory holds one run, not the file.
SORT_RUN_ROWS = 50_000
SPOOL_BLOCK_ROWS = 100


def sorted_rows(rows, index: int):
    """(number, cells) rows in time order (column `index`), the file's order among equal times;
    rows whose time can't be read first (they will be rejected). In bounded memory (SORT_RUN_ROWS)."""
    import heapq
    import pickle
    import tempfile

    def keyed(item):
        number, cells = item
        return _sortable(cells[index] if index < len(cells) else ""), number, cells

    runs = []
    rows = iter(rows)
    while run := sorted(map(keyed, islice(rows, SORT_RUN_ROWS))):
        if not runs and len(run) < SORT_RUN_ROWS:
            return [(number, cells) for _, number, cells in run]  # it fits in one run: no spooling
        spool = tempfile.TemporaryFile()
        for start in range(0, len(run), SPOOL_BLOCK_ROWS):  # (the merge holds one block of each run)
            pickle.dump(run[start:start + SPOOL_BLOCK_ROWS], spool, protocol=pickle.HIGHEST_PROTOCOL)
        spool.seek(0)
        runs.append(spool)
    return ((number, cells) for _, number, cells in heapq.merge(*map(_unspooled, runs)))


def _unspooled(spool):
    import pickle

    with spool:
        while True:
            try:
                yield from pickle.load(spool)
            except EOFError:
                return


def _sortable(text) -> str:
    """A purchased_at cell as sortable ISO text ("" when it is not a time)."""
    if isinstance(text, str) and len(text) == 19 and text[10] == "T":
        return text
    try:
        return parse_when(text).isoformat()
    except VipError:
        return ""


if __name__ == "__main__":
    main()
