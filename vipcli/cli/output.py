"""Rendering: one JSON object for scripts, rich tables for people. Money leaves as yuan text."""

import functools
import json
import os
import sys
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal

from vipcli.i18n import _, current

MONEY_KEYS = frozenset({
    "paid", "regular", "promo", "refunded", "refunded_total", "spend_12m", "needed_for_next",
    "single_purchase_for_next", "amount", "value", "spend", "total_spend", "qualify_single",
    "max_amount", "single_purchase",
})


def jsonable(data, key: str | None = None):
    """Fen -> '880.00' for money keys; Decimal -> text; dates -> ISO; recursively."""
    if isinstance(data, dict):
        return {k: jsonable(v, k) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v, key) for v in data]
    if isinstance(data, bool) or data is None:
        return data
    if isinstance(data, int) and key in MONEY_KEYS:
        from vipcli.money import format_fen

        return format_fen(data)
    if isinstance(data, Decimal):
        return str(data)
    if isinstance(data, (date, datetime)):
        return data.isoformat()
    return data


def emit(session, data: dict, human, out: str | None = None, page: bool = False) -> None:
    """Print `data` as one JSON object under --json, else call `human(console)`. When the command's
    output file `out` is "-" (stdout), this summary goes to stderr instead. `page`: a list, shown
    through the pager on a terminal (`paged`)."""
    to_stderr = out == "-"
    if session.json:
        (sys.stderr if to_stderr else sys.stdout).write(json.dumps(jsonable(data), ensure_ascii=False) + "\n")
        return
    if page and not to_stderr:
        with paged(session) as (c, _out):
            human(c)
        return
    human(console(stderr=to_stderr))


@contextmanager
def paged(session):
    """(console, stream) for a list on a terminal: what is printed goes through the pager when it is
    done, as git does ($PAGER, else less with LESS=FRX unless LESS is set: a list that fits the
    screen is just printed). Off with --no-pager, PAGER=cat or PAGER= (empty), and off the terminal."""
    if not session.pager or not sys.stdout.isatty() or os.environ.get("PAGER", "less").strip() in ("", "cat"):
        yield console(), sys.stdout
        return
    import io
    import pydoc
    import shutil

    buffer = io.StringIO()
    yield _plain_console_class()(file=buffer, force_terminal=True, width=shutil.get_terminal_size().columns,
                                 soft_wrap=False, highlight=False, markup=False, emoji=False), buffer
    os.environ.setdefault("LESS", "FRX")
    pydoc.pager(buffer.getvalue())


def emit_rows(session, key: str, rows, shown: int | None, summary, human_head, human_row, human_tail) -> None:
    """A list written as it is read, in constant memory: under --json one object
    {key: [the first `shown` rows], **summary()}, else human_head(console), a line per row
    (human_row(row) -> text) and human_tail(console); summary() is asked for once every row has
    been read (the counts are known only then). Rows past `shown` are read, not written. On a
    terminal the list goes through the pager (`paged`)."""
    import itertools

    out = sys.stdout
    rows = iter(rows)
    first = next(rows, None)  # (a failing query fails here, before a line is written)
    rows = itertools.chain([] if first is None else [first], rows)
    if session.json:
        out.write("{" + json.dumps(key) + ": [")
        for i, row in enumerate(rows):
            if shown is None or i < shown:
                out.write((", " if i else "") + json.dumps(jsonable(row), ensure_ascii=False))
        out.write("]")
        for name, value in summary().items():
            out.write(", " + json.dumps(name) + ": " + json.dumps(jsonable(value, name), ensure_ascii=False))
        out.write("}\n")
        return
    with paged(session) as (c, out):
        human_head(c)
        for i, row in enumerate(rows):
            if shown is None or i < shown:
                out.write(printable(human_row(row)) + "\n")
        human_tail(c)


def aligned(cells: list, widths: list[int]) -> str:
    """One line of plain columns, each padded to its width as a terminal shows it (a Chinese
    character takes two columns)."""
    from vipcli.cli.helpformat import columns

    texts = ["" if cell is None else str(cell) for cell in cells]
    return "  ".join(text + " " * max(w - columns(text), 0) for text, w in zip(texts, widths)).rstrip()


# Into a file or a pipe, nothing is cut or wrapped: as wide as the widest line needs.
UNBOUNDED_WIDTH = 100_000


def printable(text: str) -> str:
    """Control and format characters (ESC sequences, U+202E right-to-left override) in text that came
    from a person or a file, shown escaped: they would move the cursor, recolour the terminal or
    reverse what follows. Line ends and tabs stay."""
    import unicodedata

    if text.isprintable():
        return text
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf")
                   else ascii(ch)[1:-1] for ch in text)


def console(stderr: bool = False):
    """Lines and tables fit a terminal's width; into a file or a pipe, a line stays one line and a
    table keeps every cell whole."""
    stream = sys.stderr if stderr else sys.stdout
    # No markup and no emoji codes: text that came from a person or a file (a name `[/x]`, a receipt
    # `[link=...]`) is printed as it is, never interpreted. Styles come from `styled`.
    plain = {"highlight": False, "markup": False, "emoji": False, "stderr": stderr}
    if stream.isatty():
        return _plain_console_class()(soft_wrap=False, **plain)
    return _plain_console_class()(soft_wrap=True, width=UNBOUNDED_WIDTH, **plain)


@functools.cache
def _plain_console_class():
    from rich.console import Console

    class PlainConsole(Console):
        """Text printed with its control characters escaped (`printable`), whatever it came from."""

        def render_str(self, text, **kwargs):
            return super().render_str(printable(text), **kwargs)

        def print(self, *objects, **kwargs):
            return super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)

    return PlainConsole



def styled(*parts):
    """One line from plain text and (text, style) pairs: only the styles given are applied."""
    from rich.text import Text

    return Text.assemble(*(printable(p) if isinstance(p, str) else (printable(p[0]), p[1]) for p in parts))


def table(title: str | None, columns: list[str], rows: list[list], justify_right=()):
    """A table for people; `columns` are English messages (marked N_), shown in the language in use."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(_(column), justify="right" if column in justify_right else "left")
    for row in rows:
        grid.add_row(*["" if v is None else str(v) for v in row])
    return grid


def yuan(fen: int | None) -> str:
    from vipcli.money import format_fen

    return "" if fen is None else format_fen(fen)


def fields_panel(pairs: list[tuple[str, object]]):
    """A two-column key/value grid for one record; labels are English messages (marked N_)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in pairs:
        grid.add_row(_(label), "" if value is None else str(value))
    return grid


# --- codes as people read them: the code in English, the name a clerk types in Chinese ------------


def tier_label(rules, code: str | None) -> str | None:
    """A tier: its code (gold), or in Chinese its name in the rules (金卡)."""
    if code is None or current() != "zh":
        return code
    return next((tier.name for tier in rules.tiers if tier.code == code), code)


def status_label(code: str | None) -> str | None:
    """A card's status as people read it (cards.status_label)."""
    from vipcli.cards import status_label as label

    return label(code)


def channel_label(code: str | None) -> str | None:
    """A follow-up channel: its code (phone), or in Chinese the name a clerk types (电话: rules.CHANNEL_NAMES)."""
    if code is None or current() != "zh":
        return code
    from vipcli.rules import CHANNEL_NAMES

    return next((name for name, known in CHANNEL_NAMES.items() if known == code), code)


def gender_label(code: str | None) -> str | None:
    """F / M, or in Chinese 女 / 男 (as a clerk types them: fields.GENDER_NAMES)."""
    if code is None or current() != "zh":
        return code
    from vipcli.fields import GENDER_NAMES

    return next((name for name, known in GENDER_NAMES.items() if known == code), code)
