"""Plain coercion for text, flag and list-of-text parameters.

Typer 0.29 coerces every parameter through a pydantic TypeAdapter, which imports pydantic and
builds an adapter per parameter on every run: more than the rest of `vip purchase` together.
vipcli declares its parameters as text and parses them itself (money, dates, phones need our own
messages and exit codes anyway), so a plain coercer is exact. Where typer's internals differ
(another version), nothing is replaced and typer's own coercion runs: slower, same behaviour.
"""

from contextlib import contextmanager
from dataclasses import dataclass

from typer.core import TyperCommand, TyperGroup

from vipcli.cli.helpformat import HelpContext, columns
from vipcli.i18n import _, current

try:
    from typer._coercion import RuntimeParam
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - other typer versions keep their own coercion
    RuntimeParam = _TyperParameter = None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _Plain(RuntimeParam):
        def _coerce_value(self, value, param, ctx):
            if isinstance(value, (list, tuple)):
                return [str(v) for v in value]
            if self.annotation is bool:
                return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            return value if isinstance(value, str) else str(value)


_PLAIN = {str, bool, list[str]}


# What a value-taking option's help shows after its name (instead of a type name such as <str>).
METAVARS = {
    "--amount": "YUAN", "--promo": "YUAN", "--paid": "YUAN", "--phone": "PHONE", "--at": "TIME",
    "--as-of": "DATE", "--since": "DATE", "--until": "DATE", "--birthday": "DATE", "--db": "FILE",
    "--out": "FILE", "--rules": "FILE", "--rejects": "FILE", "--keep": "FILE", "--points": "N",
    "--limit": "N", "--offset": "N", "--within": "DAYS", "--year": "YEAR", "--request-id": "ID",
    "--id-number": "ID", "--reward": "CODE", "--class": "A-E", "--tier": "TIER", "--status": "STATUS",
}


def _named(params) -> None:
    for param in params:
        if getattr(param, "param_type_name", "") == "argument" and hasattr(param, "display_type_rich"):
            param.display_type_rich = _no_type  # (typer 0.29 shows "CARD <str>": the name says it)
        opts = getattr(param, "opts", ())
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False):
            if param.metavar is None or param.metavar.startswith("<"):
                param.metavar = METAVARS.get(opts[0], opts[0].lstrip("-").upper().replace("-", "_"))


def _no_type(ctx=None) -> str:
    return ""


def _lighten(params) -> None:
    _named(params)
    if RuntimeParam is None:
        return
    for param in params:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            continue
        descriptor = param.type_descriptor
        if descriptor.annotation in _PLAIN and descriptor.parameter_info.parser is None:
            param._runtime_param = _Plain(parameter_info=descriptor.parameter_info,
                                          annotation=descriptor.annotation)


class Translated:
    """Help drawn in the language in use (vipcli.i18n): a command's help and its parameters' are
    English messages marked N_() where they are defined, translated as the help is drawn (the
    definitions stay English: a run in-process may change language, as the tests do). Typer's own
    words ("Options", "[required]") come through gettext's global domain (i18n.use). Chinese help
    is wrapped by its display width (helpformat)."""

    context_class = HelpContext

    def format_help(self, ctx, formatter):
        with _translated(self, self.get_params(ctx)):
            super().format_help(ctx, formatter)

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix=_("Usage: "))

    def collect_usage_pieces(self, ctx):
        """A required argument by its bare name (`vip show CARD/PHONE`), an optional one in brackets:
        typer 0.29 writes the required ones in braces, which read as a choice."""
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]

    def get_short_help_str(self, limit: int = 45) -> str:
        if current() != "zh":
            return super().get_short_help_str(limit)
        # Chinese: the first sentence ends at 。, and a character takes two columns
        sentence = _(self.short_help or self.help or "").partition("。")[0]
        width, cut = 0, len(sentence)
        for i, ch in enumerate(sentence):
            width += columns(ch)
            if width > limit - 1:
                cut = i
                break
        return sentence[:cut] + ("…" if cut < len(sentence) else "")


@contextmanager
def _translated(command, params):
    kept = [(thing, thing.help) for thing in (command, *params) if getattr(thing, "help", None)]
    try:
        for thing, text in kept:
            thing.help = _(text)
        yield
    finally:
        for thing, text in kept:
            thing.help = text


class PlainCommand(Translated, TyperCommand):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _lighten(params)
        return params

    def invoke(self, ctx):
        from vipcli.cli import authorize

        authorize(ctx)  # the operator's role, before the command reads or writes anything
        return super().invoke(ctx)


class PlainGroup(Translated, TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _lighten(params)
        return params
