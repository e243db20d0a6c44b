"""One error hierarchy: domain code raises these; the CLI turns them into a line and an exit code.

The exit codes (SPEC §1) are named once, in ExitStatus, for the errors and the CLI's handler.
"""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    REFUSED = 1  # a business rule says no, or an unknown card, phone or receipt
    INVALID = 2  # invalid usage or value
    ROWS_REJECTED = 3  # an import finished with rejected rows (the rest is in)
    DATABASE = 4  # locked past the timeout, missing, corrupt, newer schema, missing key
    INTERRUPTED = 130  # Ctrl-C: what was committed stays


def shown(text, limit: int = 40) -> str:
    """What a person typed, quoted for an error line: cut short when long (a 5,000-digit number or a
    megabyte cell must not become a megabyte error line)."""
    if isinstance(text, str) and len(text) > limit:
        return f"{text[:limit]!r}… ({len(text):,} characters)"
    return repr(text)


class VipError(Exception):
    exit_code = ExitStatus.REFUSED
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

    exit_code = ExitStatus.REFUSED
    code = "refused"


class NotFound(VipError):
    exit_code = ExitStatus.REFUSED
    code = "not_found"


class InvalidInput(VipError):
    """A value the user typed is not acceptable (amount, phone, date, option)."""

    exit_code = ExitStatus.INVALID
    code = "invalid_input"


class RowsRejected(VipError):
    exit_code = ExitStatus.ROWS_REJECTED
    code = "rows_rejected"


class Interrupted(VipError):
    """Ctrl-C: what was committed stays, the transaction under way was rolled back."""

    exit_code = ExitStatus.INTERRUPTED
    code = "interrupted"


class DatabaseProblem(VipError):
    """Locked past the timeout, corrupt file, newer schema, missing key."""

    exit_code = ExitStatus.DATABASE
    code = "database"
