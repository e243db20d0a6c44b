"""Help wrapped for Chinese text. Typer's help formatter wraps by counting characters and breaks
only at spaces, so a Chinese line (no spaces, two columns a character) runs past the terminal and
an English word inside it is cut in two. Here a line breaks before or after any CJK character or
at a space, never inside a word or before closing punctuation, and a CJK character takes two
columns. ASCII text is left to typer's own formatter, as it was.

Reaches into typer._click (typer's vendored click, pinned with typer 0.29 in pyproject.toml)."""

import re
from unicodedata import east_asian_width

import typer
from typer._click.formatting import HelpFormatter

# One CJK character, or a run of other non-space characters, or a space; closing punctuation stays
# with what it closes.
_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_CLOSING = "，。；：、）！？」』"
_UNITS = re.compile(f"[{_CJK}][{_CLOSING}]*|[^\\s{_CJK}]+[{_CLOSING}]*|\\s")


def columns(text: str) -> int:
    """How many terminal columns `text` takes: a wide (CJK) character two, any other one."""
    return sum(2 if east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap(text: str, limit: int) -> list[str]:
    """`text` (one paragraph) in lines of at most `limit` columns (a word longer than that stands alone)."""
    lines, line, used = [], "", 0
    for unit in _UNITS.findall(" ".join(text.split())):
        if unit == " ":
            if line:
                line, used = line + " ", used + 1
            continue
        width = columns(unit)
        if used + width > limit and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        line, used = line + unit, used + width
    if line.strip():
        lines.append(line.rstrip())
    return lines


class CJKHelpFormatter(HelpFormatter):
    def write_text(self, text: str) -> None:
        if text.isascii():
            return super().write_text(text)
        indent = " " * self.current_indent
        paragraphs = [wrap(p, max(self.width - self.current_indent, 20)) for p in text.split("\n\n")]
        self.write("\n\n".join("\n".join(indent + line for line in lines) for lines in paragraphs) + "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        if all(first.isascii() and second.isascii() for first, second in rows):
            return super().write_dl(rows, col_max, col_spacing)
        first_col = min(max(columns(first) for first, _ in rows), col_max) + col_spacing
        text_width = max(self.width - first_col - 2, 10)
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if columns(first) <= first_col - col_spacing:
                self.write(" " * (first_col - columns(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = wrap(second, text_width) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(" " * (first_col + self.current_indent) + line + "\n")


class HelpContext(typer.Context):
    formatter_class = CJKHelpFormatter
