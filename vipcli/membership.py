"""A membership's card over its life (lost, found, replaced, renewed, the renewal month's batch)
and its end: cancellation (voluntary exit or for a breach) and erasure of personal data. Each
writes its audit row inside the caller's write transaction."""

from datetime import datetime

from vipcli import cards, ledger
from vipcli.dates import iso
from vipcli.auditlog import audit
from vipcli.errors import InvalidInput, Refused
from vipcli.rules import Rules
from vipcli.i18n import _

# What each lifecycle step does to the card of a CARD/PHONE: (conn, rules, card_no, now, operator, force)
LIFECYCLE = {
    "card lost": lambda conn, rules, no, now, operator, force: cards.report_lost(conn, no, now),
    "card found": lambda conn, rules, no, now, operator, force: cards.found(conn, rules, no, now),
    "card replace": lambda conn, rules, no, now, operator, force: cards.replace(conn, rules, no, now, operator),
    "card renew": lambda conn, rules, no, now, operator, force: cards.renew(conn, rules, no, now, force),
}


def card_step(conn, rules: Rules, ref: str, step: str, now: datetime, operator: str, force: bool = False) -> dict:
    """One LIFECYCLE step on the card of `ref` (resolved under the caller's write lock: a phone's
    card may just have changed)."""
    from vipcli import archive

    _customer, card = archive.resolve(conn, rules, ref)
    if card is None:
        raise Refused(_("this customer has no card"), code="no_card")
    data = LIFECYCLE[step](conn, rules, card["card_no"], now, operator, force)
    audit(conn, now, operator, step + (" --force" if force else ""), card["card_no"],
          **{k: v for k, v in data.items() if k in ("new_card_no", "valid_to", "forced")})
    return data


RENEW_CHUNK = 2_000  # cards renewed per write transaction: a till waits behind one chunk at most


def renew_all(conn, rules: Rules, now: datetime, operator: str, force: bool, dry_run: bool = False,
              chunk: int = RENEW_CHUNK, progress=None) -> dict:
    """The renewal month's batch (第十七条 每年12月为换卡月): every current card valid to this year's end
    renewed for a year; outside the month only with `force` (audited). `chunk` cards per write
    transaction of its own, waiting tills let in between; a renewed card is no longer due, so a
    batch killed between chunks, run again, renews the rest. `dry_run`: each chunk rolled back.
    `progress(n)`: told after each chunk how many cards it renewed."""
    from vipcli.db import let_waiters_in, transaction

    if rules.renewal_month is None:
        raise Refused(_("cards of these rules do not expire; there is nothing to renew"), code="no_renewal")
    if now.month != rules.renewal_month and not force:
        raise InvalidInput(_("renew --all runs in the renewal month ({renewal_month}); use --force outside it "
                             "(audited)").format(
                               renewal_month=rules.renewal_month), code="outside_renewal_window")
    renewed, last = [], ""
    while True:
        with transaction(conn, dry_run=dry_run):
            part = [cards.renew(conn, rules, no, now, True) for no in cards.due_for_renewal(conn, rules, now, last, chunk)]
        renewed += part
        if progress:
            progress(len(part))
        if len(part) < chunk:
            break
        last = part[-1]["card_no"]
        let_waiters_in(conn)
    if not dry_run:
        with transaction(conn):
            audit(conn, now, operator, "card renew --all" + (" --force" if force else ""), None, renewed=len(renewed))
    return {"renewed": len(renewed), "cards": [{"card_no": r["card_no"], "valid_to": r["valid_to"]} for r in renewed]}


def end(conn, rules: Rules, ref: str, reason: str, now: datetime, operator: str, erase: bool) -> dict:
    """`vip cancel`: the card of `ref` cancelled (its points forfeited) and, with `erase`, the
    archive anonymised; a prospect (no card) can only be erased (PIPL art. 47)."""
    from vipcli import archive

    customer, card = archive.resolve(conn, rules, ref)
    if card is None and not erase:
        raise Refused(_("this customer has no card"), code="no_card")
    if card is None:
        done = erase_prospect(conn, customer["id"], now)
    else:
        done = cancel(conn, card["card_no"], reason, now, operator, erase)
    audit(conn, now, operator, "cancel --erase" if erase else "cancel", done["card_no"] or str(customer["id"]),
          reason=reason, points_forfeited=done["points_forfeited"], erased=done["erased"])
    return done

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
        raise Refused(_("card {card_no} is {status}; nothing to cancel").format(
                          card_no=card_no, status=cards.status_label(card['status'])), code=f"card_{card['status']}")
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
        raise Refused(_("customer {customer_id} still holds card {card_no}; cancel it first").format(
                          customer_id=customer_id, card_no=live['card_no']),
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

# (On PostgreSQL the journal is a table in a schema of its own that `vip backup` leaves out, so that
# pg_restore of an older backup does not take it back: vipcli/pg.py.)

def _journal_path(conn) -> str | None:
    from vipcli.db import file_path

    path = file_path(conn)
    return path + ".erasures" if path else None


def journal_erasure(conn, customer_id: int, at: datetime) -> None:
    """After the erasure's commit (a rolled-back or dry-run erasure is not one)."""
    import os

    from vipcli.db import engine

    if engine(conn) == "postgresql":
        from vipcli import pg

        pg.journal_erasure(conn, customer_id, iso(at))
        return
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

    from vipcli.db import busy_timeout, engine

    deadline = time.monotonic() + (busy_timeout() if timeout is None else timeout)
    if engine(conn) == "postgresql":
        from vipcli import pg

        return pg.vacuum_erased(conn, deadline)
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

    from vipcli.db import engine

    if engine(conn) == "postgresql":
        from vipcli import pg

        return pg.erased_before(conn)
    path = _journal_path(conn)
    if path is None or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return sorted({int(line.split("\t")[0]) for line in handle if line.strip()})


def after_restore(conn, src: str, now: datetime, operator: str) -> list[int]:
    """A restore recorded, and whoever the erasure journal names erased again (reapply_erasures)."""
    from vipcli.db import transaction

    with transaction(conn):
        again = reapply_erasures(conn, now, operator)
        audit(conn, now, operator, "restore", src, erased_again=len(again))
    return again


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
