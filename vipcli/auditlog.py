"""The audit log: who did what, when, to what (every write, unmask, override and erase). A domain
function writes its row inside its own write transaction, as the change it records."""

import json
from datetime import datetime

from vipcli.dates import iso
from vipcli.db import transaction


def audit(conn, at: datetime, operator: str, command: str, target: str | None = None, **detail) -> None:
    conn.execute(
        "INSERT INTO audit(at, operator, command, target, detail) VALUES (?, ?, ?, ?, ?)",
        (iso(at), operator, command, target, json.dumps(detail, ensure_ascii=False, default=str)),
    )


def disclosed(conn, at: datetime, operator: str, command: str, target: str | None, **detail) -> None:
    """An audit row in a write transaction of its own, committed before full phone or ID numbers
    are shown or written anywhere (an unmask, an SMS outbox): PIPL's record of who saw what, when."""
    with transaction(conn):
        audit(conn, at, operator, command, target, **detail)


def audit_entries(conn, since: str | None, operator: str | None, command: str | None, limit: int) -> list[dict]:
    """The audit log, newest first, filtered (`since`: ISO text); details as objects."""
    sql, params = "SELECT * FROM audit WHERE 1 = 1", []
    for condition, value in (("at >= ?", since), ("operator = ?", operator), ("command = ?", command)):
        if value:
            sql += f" AND {condition}"
            params.append(value)
    return [{**dict(r), "detail": json.loads(r["detail"])}
            for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))]
