"""The purchases import's time-order pass (import_purchases.time_order), in a process of its own for
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

from vipcli.errors import InvalidInput, VipError


class Known:
    """An answer worked out already (a small file: the pass runs before the import)."""

    def __init__(self, path: str, index: int, encoding: str | None):
        from vipcli.io.import_purchases import time_order

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
            out, _ = self.proc.communicate()
            try:
                reply = json.loads(out)
            except ValueError:
                raise VipError(f"the import's time-order pass stopped (exit {self.proc.returncode}); "
                               "nothing was committed, run the import again", code="import_stopped") from None
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
    from vipcli.io.import_purchases import time_order

    path, index, encoding = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
    try:
        in_order, rows = time_order(path, index, encoding)
        reply = {"in_order": in_order, "rows": rows}
    except VipError as exc:
        reply = {"error": exc.message, "code": exc.code}
    print(json.dumps(reply))


if __name__ == "__main__":
    main()
