"""Plain coercion for text, flag and list-of-text parameters.

Typer 0.29 coerces every parameter through a pydantic TypeAdapter, which imports pydantic and
builds an adapter per parameter on every run: more than the rest of `vip purchase` together.
vipcli declares its parameters as text and parses them itself (money, dates, phones need our own
messages and exit codes anyway), so a plain coercer is exact. Where typer's internals differ
(another version), nothing is replaced and typer's own coercion runs: slower, same behaviour.
"""

from dataclasses import dataclass

from typer.core import TyperCommand, TyperGroup

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


class PlainCommand(TyperCommand):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _lighten(params)
        return params


class PlainGroup(TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _lighten(params)
        return params
