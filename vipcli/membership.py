"""End of a membership: cancellation (voluntary exit or for a breach) and erasure of personal data."""

from datetime import datetime

from vipcli import cards, ledger
from vipcli.dates import iso
from vipcli.errors import Refused

# What erasure clears; purchases, ledger and card history stay for the accounts.
PERSONAL_COLUMNS = ("phone", "name", "gender", "birthday", "id_enc", "id_hmac", "id_masked", "email", "address")


def erase_prospect(conn, customer_id: int, at: datetime) -> dict:
    """A customer who never had a card (a prospect known by a phone) asks to be erased."""
    erased = erase_personal_data(conn, customer_id, at)
    return {"card_no": None, "status": "prospect", "points_forfeited": 0, "customer_id": customer_id,
            "erased": erased}


def cancel(conn, card_no: str, reason: str, at: datetime, operator: str, erase: bool) -> dict:
    card = cards.get(conn, card_no)
    if card["status"] in ("replaced", "cancelled") and not erase:
        raise Refused(f"card {card_no} is {card['status']}; nothing to cancel", code=f"card_{card['status']}")
    forfeited = 0
    if card["status"] not in ("replaced", "cancelled"):
        forfeited = ledger.forfeit(conn, card_no, at, operator, f"membership cancelled: {reason}")
        conn.execute("UPDATE cards SET status = 'cancelled', status_at = ? WHERE card_no = ?", (iso(at), card_no))
    erased = erase_personal_data(conn, card["customer_id"], at) if erase else False
    return {"card_no": card_no, "status": "cancelled", "points_forfeited": forfeited,
            "customer_id": card["customer_id"], "erased": erased}


def erase_personal_data(conn, customer_id: int, at: datetime) -> bool:
    """Anonymise the archive: personal columns, preferences and the change log's old and new values.
    The connection runs with secure_delete (freed bytes zeroed); the caller checkpoints the WAL after
    commit so no old page image survives there either."""
    customer = conn.execute("SELECT erased_at FROM customers WHERE id = ?", (customer_id,)).fetchone()
    if customer["erased_at"]:
        return False
    live = cards.live_card(conn, customer_id)
    if live is not None:
        raise Refused(f"customer {customer_id} still holds card {live['card_no']}; cancel it first",
                      code="has_card")
    sets = ", ".join(f"{c} = NULL" for c in PERSONAL_COLUMNS)
    conn.execute(f"UPDATE customers SET {sets}, prefs = '{{}}', erased_at = ? WHERE id = ?", (iso(at), customer_id))
    conn.execute("UPDATE changes SET old = NULL, new = NULL WHERE customer_id = ?", (customer_id,))
    # A preference's name can be personal too (pref.病史): only that a preference changed stays.
    conn.execute("UPDATE changes SET field = 'pref' WHERE customer_id = ? AND field LIKE 'pref.%'", (customer_id,))
    conn.execute("UPDATE visits SET note = NULL WHERE customer_id = ?", (customer_id,))
    return True


# PIPL art. 47: an erasure must outlive a restore of an older backup. Each, once committed, is written
# (customer id and time, nothing personal) to DATABASE.erasures beside the database, and a restore
# applies them again.

def _journal_path(conn) -> str | None:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    return path + ".erasures" if path else None


def journal_erasure(conn, customer_id: int, at: datetime) -> None:
    """After the erasure's commit (a rolled-back or dry-run erasure is not one)."""
    import os

    path = _journal_path(conn)
    if path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{customer_id}\t{iso(at)}\n")
        handle.flush()
        os.fsync(handle.fileno())


def wipe_wal(conn, timeout: float | None = None) -> bool:
    """After an erasure's commit: copy the WAL into the file and truncate it, so the old page images
    with the erased values are gone. A reader in another process can keep them for a while: tried
    until the busy timeout; False when they are still there."""
    import time

    from vipcli.db import busy_timeout

    deadline = time.monotonic() + (busy_timeout() if timeout is None else timeout)
    while True:
        busy, log, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy and log <= 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def erased_before(conn) -> list[int]:
    """The customers erased in this database's life, from its journal."""
    import os

    path = _journal_path(conn)
    if path is None or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return sorted({int(line.split("\t")[0]) for line in handle if line.strip()})


def reapply_erasures(conn, at: datetime, operator: str) -> list[int]:
    """After a restore, inside the caller's transaction: erase again whoever the journal says was
    erased and the restored copy brought back (a membership still live is cancelled first)."""
    again = []
    for customer_id in erased_before(conn):
        row = conn.execute("SELECT erased_at FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None or row["erased_at"] is not None:
            continue
        live = cards.live_card(conn, customer_id)
        if live is not None:
            cancel(conn, live["card_no"], "erased before the restore", at, operator, erase=False)
        erase_personal_data(conn, customer_id, at)
        again.append(customer_id)
    return again
