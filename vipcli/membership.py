"""End of a membership: cancellation (voluntary exit or for a breach) and erasure of personal data."""

from datetime import datetime

from vipcli import cards, ledger
from vipcli.dates import iso
from vipcli.errors import Refused

# What erasure clears; purchases, ledger and card history stay for the accounts.
PERSONAL_COLUMNS = ("phone", "name", "gender", "birthday", "id_enc", "id_hmac", "id_masked", "email", "address")


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
    conn.execute("UPDATE visits SET note = NULL WHERE customer_id = ?", (customer_id,))
    return True
