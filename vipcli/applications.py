"""Card applications, for rules with `card_issue = "review"` (56饰, 003 贵宾卡申办及发放流程): a qualifying
purchase, or `vip apply`, opens an application holding the qualifying receipts; the head office's VIP
desk approves it (the card gets the next number of the applicant's region, its SMS goes into the next
`vip notify card-issued`) or rejects it with a reason.

Until approval the customer is a prospect: list price, no points. On approval the purchase that
opened the application and the customer's card-less purchases since (made while it waited) earn
the points they would have earned had the card been issued at once: what each paid, net of its
refunds, under the rules in force, a lot each dated the day of approval; and the customer's first
tier is set from them.
"""

from datetime import datetime

from vipcli import archive, cards, ledger
from vipcli.auditlog import audit
from vipcli.dates import iso, months_before
from vipcli.errors import InvalidInput, NotFound, Refused
from vipcli.fields import mask_phone
from vipcli.i18n import N_, _
from vipcli.rules import Rules

# The names the seed gives the fields an application may require (rules.ARCHIVE_FIELDS; 003 发放流程 4:
# 顾客性别,姓氏,出生日期,联系电话 为必填项).
FIELD_NAMES = {"gender": N_("gender (性别)"), "name": N_("name (姓氏)"), "birthday": N_("birthday (出生日期)"),
               "phone": N_("phone (联系电话)"), "id_number": N_("ID number"), "email": N_("email"),
               "address": N_("address")}
STATUSES = ("pending", "approved", "rejected")
STATUS_NAMES = {"pending": N_("pending"), "approved": N_("approved"), "rejected": N_("rejected")}


def waiting(conn) -> set[int]:
    """The customers with an application waiting for review."""
    return {row[0] for row in conn.execute("SELECT customer_id FROM applications WHERE status = 'pending'")}


def pending(conn, customer_id: int):
    return conn.execute("SELECT * FROM applications WHERE customer_id = ? AND status = 'pending'",
                        (customer_id,)).fetchone()


# The receipts of an application a purchase opened: that purchase, and the customer's card-less
# purchases of the qualifying window before it (none when one purchase qualified on its own). One
# statement for `vip purchase` and the import's writer (io/writer.py).
RECEIPTS = ("INSERT INTO application_receipts(application_id, purchase_id) SELECT ?, ? UNION "
            "SELECT ?, id FROM purchases WHERE customer_id = ? AND card_no IS NULL AND purchased_at > ? "
            "AND purchased_at <= ? AND id < ?")


def receipts_of(rules: Rules, application: int, purchase_id: int, customer_id: int, reason: str,
                at: datetime) -> tuple:
    """RECEIPTS' values for the application that purchase `purchase_id` (at `at`) opened on `reason`."""
    months = rules.qualifying_months(reason)
    since = iso(months_before(at, months)) if months else iso(at)
    return application, purchase_id, application, customer_id, since, iso(at), purchase_id


def on_qualifying(conn, rules: Rules, customer, purchase_id: int, reason: str, at: datetime, store: str | None,
                  operator: str) -> int:
    """Inside the caller's write transaction: a purchase qualified a prospect under review rules. Its
    pending application's id, or a new one's, opened with the purchases that qualified (RECEIPTS)."""
    found = pending(conn, customer["id"])
    if found is not None:
        return found["id"]  # (its purchases earn from the one that opened it on: nothing to add)
    application = _open(conn, customer["id"], reason, store or customer["store"], at, operator, purchase_id)
    conn.execute(RECEIPTS, receipts_of(rules, application, purchase_id, customer["id"], reason, at))
    audit(conn, at, operator, "apply", str(application), customer_id=customer["id"], reason=reason)
    return application


def _open(conn, customer_id: int, reason: str, store: str | None, at: datetime, operator: str,
          opened_by: int | None) -> int:
    """A pending application; `opened_by`: the purchase from which on the customer's purchases earn
    their points on approval (the one that qualified), or None (from the approval on)."""
    return conn.execute(
        "INSERT INTO applications(customer_id, status, reason, opened_by, store, applied_at, operator) "
        "VALUES (?, 'pending', ?, ?, ?, ?, ?) RETURNING id",
        (customer_id, reason, opened_by, store, iso(at), operator)).fetchone()[0]


def apply(conn, rules: Rules, ref: str, note: str | None, store: str | None, at: datetime, operator: str) -> dict:
    """`vip apply`: an application for a customer without a card, by hand (the counter's 申请函 for a
    customer the store vouches for); the receipts are the customer's card-less purchases so far."""
    if rules.card_issue != "review":
        raise Refused(_("these rules issue cards at once (qualification.card_issue = \"at_once\"): there is "
                        "nothing to apply for; a card comes with the qualifying purchase, or vip enroll --grant"),
                      code="no_review")
    customer, card = archive.resolve(conn, rules, ref)
    if card is not None and card["status"] not in ("cancelled", "replaced"):
        raise Refused(_("customer {id} has card {card_no} already").format(id=customer["id"], card_no=card["card_no"]),
                      code="has_card")
    if customer["erased_at"]:
        raise Refused(_("customer {id} was erased").format(id=customer["id"]), code="erased")
    found = pending(conn, customer["id"])
    if found is not None:
        raise Refused(_("customer {id} has application {application} waiting for review already").format(
            id=customer["id"], application=found["id"]), code="application_pending")
    held = [row[0] for row in conn.execute(
        "SELECT id FROM purchases WHERE customer_id = ? AND card_no IS NULL ORDER BY purchased_at, id",
        (customer["id"],))]
    application = _open(conn, customer["id"], f"applied: {note}" if note else "applied", store or customer["store"],
                        at, operator, held[-1] if held else None)
    conn.executemany("INSERT INTO application_receipts(application_id, purchase_id) VALUES (?, ?)",
                     [(application, purchase_id) for purchase_id in held])
    audit(conn, at, operator, "apply", str(application), customer_id=customer["id"], note=note)
    return describe(conn, rules, application)


def describe(conn, rules: Rules, application: int) -> dict:
    _get(conn, application)
    return _described(conn, rules, "a.id = ?", (application,))[0]


def listing(conn, rules: Rules, status: str | None) -> list[dict]:
    """The applications (in `status`), oldest first: two queries, however many there are."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(_("status: {status!r} is not one of {statuses}").format(
            status=status, statuses=", ".join(STATUSES)), code="bad_status")
    return _described(conn, rules, "? IS NULL OR a.status = ?", (status, status))


def _described(conn, rules: Rules, where: str, params: tuple) -> list[dict]:
    """The applications `where` says, each with its customer (masked), receipts and missing fields."""
    receipts = {}
    for row in conn.execute(
            "SELECT r.application_id, p.receipt, p.store, p.purchased_at, p.paid - p.refunded "
            "FROM application_receipts r JOIN purchases p ON p.id = r.purchase_id "
            f"JOIN applications a ON a.id = r.application_id WHERE {where} ORDER BY p.purchased_at, p.id", params):
        receipts.setdefault(row[0], []).append({"receipt": row[1], "store": row[2], "purchased_at": row[3],
                                                "paid": row[4]})
    return [{
        "id": row["id"], "status": row["status"], "customer_id": row["customer_id"], "name": row["name"],
        "phone": mask_phone(row["phone"]), "store": row["store"], "region": rules.region_for(row["store"]),
        "reason": row["reason"], "applied_at": row["applied_at"], "receipts": receipts.get(row["id"], []),
        "missing": missing(rules, row), "decided_at": row["decided_at"], "decided_by": row["decided_by"],
        "card_no": row["card_no"], "note": row["note"],
    } for row in conn.execute(
        "SELECT a.*, c.name, c.phone, c.gender, c.birthday, c.id_hmac, c.email, c.address FROM applications a "
        f"JOIN customers c ON c.id = a.customer_id WHERE {where} ORDER BY a.id", params)]


def missing(rules: Rules, customer) -> list[str]:
    """The required fields (rules.review_requires) the customer's archive lacks."""
    return [name for name in rules.review_requires
            if not (customer["id_hmac"] if name == "id_number" else customer[name])]


def _get(conn, application: int):
    row = conn.execute("SELECT * FROM applications WHERE id = ?", (application,)).fetchone()
    if row is None:
        raise NotFound(_("no application {id} (see vip applications)").format(id=application),
                       code="unknown_application")
    return row


def _undecided(conn, application: int):
    row = _get(conn, application)
    if row["status"] != "pending":
        raise Refused(_("application {id} is {status} already ({by}, {at})").format(
            id=application, status=row["status"], by=row["decided_by"], at=row["decided_at"]), code="decided")
    return row


def approve(conn, rules: Rules, application: int, now: datetime, operator: str) -> dict:
    """Inside the caller's write transaction: issue the card, credit the purchases, set the first tier."""
    row = _undecided(conn, application)
    customer = conn.execute("SELECT * FROM customers WHERE id = ?", (row["customer_id"],)).fetchone()
    lacking = missing(rules, customer)
    if lacking:
        raise Refused(_("application {id} cannot be approved: the archive lacks {fields} (complete the archive: "
                        "vip update PHONE --{option} …)").format(
            id=application, fields=", ".join(_(FIELD_NAMES[f]) for f in lacking),
            option=lacking[0].replace("_", "-")), code="incomplete")
    if cards.live_card(conn, customer["id"]) is not None:
        raise Refused(_("customer {id} has a card already: reject the application instead").format(
            id=customer["id"]), code="has_card")
    card_no = cards.issue(conn, rules, customer["id"], now, cards.qualified_reason(row["reason"]) + " (approved)",
                          store=row["store"])
    opened = conn.execute("SELECT purchased_at FROM purchases WHERE id = ?", (row["opened_by"],)).fetchone()
    credited = conn.execute(
        "SELECT id, paid - refunded FROM purchases WHERE customer_id = ? AND card_no IS NULL AND purchased_at >= ? "
        "ORDER BY purchased_at, id", (customer["id"], opened[0] if opened else iso(now))).fetchall()
    points = 0
    for purchase_id, net in credited:
        earned = rules.points_for(net)
        conn.execute("UPDATE purchases SET card_no = ?, points_earned = ? WHERE id = ?", (card_no, earned, purchase_id))
        if earned:
            ledger.earn(conn, rules, card_no, purchase_id, earned, now, operator, reason=f"application {application}")
        points += earned
    largest = max((net for _id, net in credited), default=0)
    spend = conn.execute("SELECT COALESCE(SUM(paid - refunded), 0) FROM purchases WHERE customer_id = ? "
                         "AND purchased_at > ?", (customer["id"], iso(months_before(now, rules.upgrade_window_months)))
                         ).fetchone()[0]
    tier = rules.tier_for(largest, spend).code
    archive.set_tier(conn, customer["id"], None, tier, now, cards.issue_reason(row["reason"]), operator)
    conn.execute("UPDATE applications SET status = 'approved', decided_at = ?, decided_by = ?, card_no = ? "
                 "WHERE id = ?", (iso(now), operator, card_no, application))
    audit(conn, now, operator, "approve", str(application), customer_id=customer["id"], card_no=card_no,
          points=points)
    return {**describe(conn, rules, application), "tier": tier, "points_earned": points,
            "points_balance": ledger.balance(conn, card_no, now), "sms_queued": customer["phone"] is not None}


def reject(conn, rules: Rules, application: int, reason: str, now: datetime, operator: str) -> dict:
    _undecided(conn, application)
    conn.execute("UPDATE applications SET status = 'rejected', decided_at = ?, decided_by = ?, note = ? "
                 "WHERE id = ?", (iso(now), operator, reason, application))
    audit(conn, now, operator, "reject", str(application), reason=reason)
    return describe(conn, rules, application)
