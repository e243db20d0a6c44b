"""Writing output files safely: atomically (temporary file in the target folder, then rename) and
with spreadsheet formula injection neutralised."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from vipcli.errors import InvalidInput

# SPEC §4: a text cell a spreadsheet would run as a formula starts, after leading whitespace, with one
# of these, or has a tab, carriage return or line feed in its leading whitespace.
FORMULA_STARTS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")


_FIRST = frozenset(FORMULA_STARTS)


def is_formula_like(text: str) -> bool:
    if not text or (text[0] not in _FIRST and not text[0].isspace()):
        return False  # the common case, decided by the first character
    rest = text.lstrip()
    lead = text[: len(text) - len(rest)]
    return rest.startswith(FORMULA_STARTS) or any(ch in lead for ch in "\t\r\n")


def neutralize(value):
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe (CSV)."""
    if isinstance(value, str) and value and is_formula_like(value):
        return "'" + value
    return value


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = ""):
    """Yield a file object (or, with mode None, a temporary path) that becomes `path` only when the
    block ends without error; a cron job never leaves half a file. Created 0600 (personal data)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInput(f"out: folder {folder} does not exist", code="bad_path")
    if target.is_dir():
        raise InvalidInput(f"out: {target} is a folder", code="bad_path")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    try:
        if mode is None:
            os.close(fd)
            yield temp
        else:
            kwargs = {"encoding": encoding, "newline": newline} if "b" not in mode else {}
            with os.fdopen(fd, mode, **kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
