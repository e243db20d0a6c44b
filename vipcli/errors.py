"""One error hierarchy: domain code raises these; the CLI turns them into a line and an exit code.

Exit codes (SPEC §1): 1 refused by a business rule or unknown entity, 2 invalid usage or value,
3 import finished with rejected rows, 4 database problem.
"""


def shown(text, limit: int = 40) -> str:
    """What a person typed, quoted for an error line: cut short when long (a 5,000-digit number or a
    megabyte cell must not become a megabyte error line)."""
    if isinstance(text, str) and len(text) > limit:
        return f"{text[:limit]!r}… ({len(text):,} characters)"
    return repr(text)


class VipError(Exception):
    exit_code = 1
    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class Refused(VipError):
    """A business rule says no (insufficient points, blocked card, duplicate phone...)."""

    exit_code = 1
    code = "refused"


class NotFound(VipError):
    exit_code = 1
    code = "not_found"


class InvalidInput(VipError):
    """A value the user typed is not acceptable (amount, phone, date, option)."""

    exit_code = 2
    code = "invalid_input"


class RowsRejected(VipError):
    exit_code = 3
    code = "rows_rejected"


class Interrupted(VipError):
    """Ctrl-C: what was committed stays, the transaction under way was rolled back."""

    exit_code = 130
    code = "interrupted"


class DatabaseProblem(VipError):
    """Locked past the timeout, corrupt file, newer schema, missing key."""

    exit_code = 4
    code = "database"
