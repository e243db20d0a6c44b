"""Writing output files safely: atomically (temporary file in the target folder, then rename) and
with spreadsheet formula injection neutralised."""

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from vipcli.errors import InvalidInput
from vipcli.i18n import _

# SPEC §4: a text cell a spreadsheet would run as a formula starts, after leading whitespace, with one
# of these, or has a tab, carriage return or line feed in its leading whitespace.
FORMULA_STARTS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")


_FIRST = frozenset(FORMULA_STARTS)
# The first characters that need a second look: a formula's, and whitespace (every character
# str.isspace() accepts lies below U+3001). Any other first character decides "not a formula".
SUSPECT_FIRST = _FIRST | frozenset(ch for ch in map(chr, range(0x3001)) if ch.isspace())


def is_formula_like(text: str) -> bool:
    if not text or text[0] not in SUSPECT_FIRST:
        return False  # the common case, decided by the first character
    rest = text.lstrip()
    lead = text[: len(text) - len(rest)]
    return rest.startswith(FORMULA_STARTS) or any(ch in lead for ch in "\t\r\n")


def neutralize(value):
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe (CSV)."""
    if isinstance(value, str) and value and value[0] in SUSPECT_FIRST and is_formula_like(value):
        return "'" + value
    return value


STDOUT = "-"

# Files this process must never write, whatever path names them: the database and its companions,
# the ID-number key and its kept versions, the command's own input (`protect`, set by the CLI).
_PROTECTED: dict[str, str] = {}  # real path -> what it is


def _this_command() -> None:
    """The first time a command asks: forget the last command's paths, take this one's."""
    import vipcli.io

    source, vipcli.io.protected_paths = vipcli.io.protected_paths, None
    if source is not None:
        _PROTECTED.clear()
        for path, what in source().items():
            _PROTECTED[os.path.realpath(path)] = what


def protect(path, what: str) -> None:
    _this_command()
    _PROTECTED[os.path.realpath(path)] = what


def _refuse_protected(path: str) -> None:
    _this_command()
    real = os.path.realpath(path)
    what = _PROTECTED.get(real)
    if what is None and os.path.exists(real):
        what = next((w for p, w in _PROTECTED.items() if os.path.exists(p) and os.path.samefile(p, real)), None)
    if what is not None:
        raise InvalidInput(_("out: {path} is {what}; give another file name").format(
                               path=path, what=what), code="protected_path")


def refuse_protected(path: str) -> None:
    """Before any work: an output path that is the database, its key or the command's input."""
    if path != STDOUT:
        _refuse_protected(path)


def csv_headed(header: list[str], prefix: bool = False):
    """An existing file vipcli may replace with a CSV of this header: one whose first line is it (or,
    with `prefix`, starts with it: a rejects file of another import's columns)."""
    expected = ",".join(header)

    def own(path: Path) -> bool:
        with open(path, "rb") as handle:
            first = handle.readline(65536).rstrip(b"\r\n").removeprefix(b"\xef\xbb\xbf")
        for encoding in ("utf-8", "gb18030"):
            try:
                text = first.decode(encoding)
            except UnicodeDecodeError:
                continue
            if text == expected or (prefix and text.startswith(expected + ",")):
                return True
        return False

    return own


def xlsx_file(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as book:
            return "xl/workbook.xml" in book.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def json_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(64).lstrip()[:1] in (b"{", b"[")


def _destination(path: str) -> tuple[str, Path | None]:
    """How `path` is written: ("stdout", None) for "-"; ("replace", FILE) for a new path or a regular
    file (a symlink to one: the file it names, the link kept); ("direct", PATH) for an existing
    device, FIFO or the like, which is written into and never replaced (`/dev/stdout`, `/dev/null`)."""
    if str(path) == STDOUT:
        return "stdout", None
    target = Path(path)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        resolved = Path(os.path.realpath(target))  # a dangling symlink: create what it names
        folder = resolved.parent
        if not folder.is_dir():
            raise InvalidInput(_("out: folder {parent} does not exist").format(
                                   parent=target.parent), code="bad_path") from None
        return "replace", resolved
    except OSError as exc:
        raise InvalidInput(_("out: {path}: {strerror}").format(
                               path=path, strerror=exc.strerror), code="bad_path") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(_("out: {target} is a folder").format(target=target), code="bad_path")
    if not stat.S_ISREG(info.st_mode):
        return "direct", target
    resolved = Path(os.path.realpath(target))
    try:
        same = os.path.samefile(resolved, target)
    except OSError:
        same = False
    # /dev/stdout -> /proc/self/fd/1 -> a file: realpath can't name it, so it is written into.
    return ("replace", resolved) if same else ("direct", target)


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str | None = "w", encoding: str | None = "utf-8",
                  newline: str | None = "", own=None, force: bool = False):
    """Yield a file object (or, with mode None, a temporary path) whose content reaches `path` only
    when the block ends without error; a cron job never leaves half a file. A regular file (or a new
    path) is replaced by a rename of a temporary file beside it, created 0600 (personal data); "-"
    streams to stdout; a device or FIFO gets the finished content written into it, never replaced.
    The temporary file is removed on any failure. Never the database, its key or the command's input
    (`protect`); an existing non-empty file only when `own(file)` recognises it as what vipcli writes
    there (an earlier export of the same kind), or with `force`."""
    how, target = _destination(str(path))
    if how != "stdout":
        _refuse_protected(str(target))
        if how == "replace" and not force and own is not None and target.is_file() and target.stat().st_size \
                and not own(target):
            raise InvalidInput(_("out: {path} exists and is not a file of this kind that vipcli wrote; give "
                                 "another name, or --force to replace it").format(
                                   path=path), code="would_replace")
    folder = target.parent if how == "replace" else Path(tempfile.gettempdir())
    prefix = f".{Path(str(path)).name or 'out'}."
    _remove_unfinished(folder, prefix)
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
    held = _hold(temp)  # while this process writes it, the temporary file is not "left behind"
    try:
        if mode is None:
            os.close(fd)
            yield temp
        else:
            kwargs = {"encoding": encoding, "newline": newline} if "b" not in mode else {}
            with os.fdopen(fd, mode, **kwargs) as handle:
                yield handle
                handle.flush()
                if how == "replace":
                    os.fsync(handle.fileno())
        if how == "replace":
            os.replace(temp, target)
        else:
            _copy_into(temp, target)
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        os.close(held)


def _hold(temp: str) -> int:
    fd = os.open(temp, os.O_RDONLY)
    if os.name == "posix":
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _remove_unfinished(folder: Path, prefix: str) -> None:
    """A run killed while writing (a kill at the rename, a power cut) leaves its temporary file, a
    copy of personal data: the next run of the same output removes any that no process still holds,
    and says so."""
    if os.name != "posix":
        return
    import fcntl
    import glob
    import sys

    removed = []
    for name in glob.glob(os.path.join(glob.escape(str(folder)), glob.escape(prefix) + "*.part")):
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(name)
            removed.append(os.path.basename(name))
        except OSError:
            pass  # another run is writing it
        finally:
            os.close(fd)
    if removed:
        print(f"note: removed {len(removed)} unfinished temporary file(s) an interrupted run left: "
              f"{', '.join(removed)}", file=sys.stderr)


def _copy_into(temp: str, target: Path | None) -> None:
    """The finished content into stdout (target None) or into a device or FIFO."""
    import shutil
    import sys

    with open(temp, "rb") as source:
        if target is None:
            sys.stdout.flush()
            shutil.copyfileobj(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
