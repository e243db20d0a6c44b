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


def _lighten(params) -> None:
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
