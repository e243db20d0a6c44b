"""The purchases import's writer: it owns the import's write transactions and runs the rows the
importer prepared through SQLite.

SQLite's B-tree work is about half of an import's time and the rule logic (Python) the other half.
For a large file the writer runs as a second process (`python -m vipcli.io.writer`), fed through a
pipe, so the two halves run on two cores at once; for a small file it runs in the importer's
process (`Writer`), where starting a process would cost more than it saves. Either way it has its
own connection, so the importer's reads always see committed data only, in both modes alike.

Protocol (pickled tuples; the process writer answers only what the importer waits for):
  begin -> changed (did another process write since our last commit)
  write pending, commit, rollback -> nothing (a failure is kept and raised at the next answer)
  slow sale -> None (the purchase went through sales.record_purchase) or the row's refusal
  close -> None, after everything before it is done
Any other failure (SQLite's) rolls the transaction back and comes back as a DatabaseProblem.
A killed importer closes the pipe: the writer rolls back what is not committed and exits. A
transaction the importer had finished (its commit already sent) may still be committed: it is
whole, and a re-run recognises its receipts.
"""

import os
import pickle
import sqlite3
import subprocess
import sys

from vipcli import errors
from vipcli.applications import RECEIPTS
from vipcli.errors import DatabaseProblem, VipError
from vipcli.i18n import _

SQL = {
    "customers": "INSERT INTO customers(id, phone, store, created_at) VALUES (?, ?, ?, ?)",
    "cards": "INSERT INTO cards(card_no, customer_id, region, sequence, status, issued_at, valid_to, reason, "
             "status_at, registration_from) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?)",
    "purchases": "INSERT INTO purchases(id, receipt, customer_id, card_no, store, purchased_at, regular, promo, "
                 "paid, paid_given, discount_rate, points_earned, rules_version, operator, recorded_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "lots": "INSERT INTO point_lots(id, card_no, purchase_id, points, earned_at, usable_from, expires_at, "
            "remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "ledger": "INSERT INTO ledger(id, card_no, lot_id, kind, delta, at, operator, purchase_id, reason) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "tiers": "INSERT INTO tier_changes(id, customer_id, from_tier, to_tier, at, reason, operator) "
             "VALUES (?, ?, ?, ?, ?, ?, ?)",
    "tier_set": "UPDATE customers SET tier = ?, tier_since = ? WHERE id = ?",
    "sequences": "INSERT INTO card_sequences(region, last) VALUES (?, ?) "
                 "ON CONFLICT(region) DO UPDATE SET last = excluded.last",
    "applications": "INSERT INTO applications(id, customer_id, status, reason, opened_by, store, applied_at, "
                    "operator) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
    "application_receipts": RECEIPTS,
}
TABLES = tuple(SQL)  # foreign-key order


def writer_for(target, rules, now, operator):
    """The writer in this process for the database `target`: SQLite's, or PostgreSQL's (io/pg_writer.py)."""
    from vipcli.pg import is_url

    if is_url(str(target)):
        from vipcli.io.pg_writer import PgWriter

        return PgWriter(str(target), rules, now, operator)
    return Writer(target, rules, now, operator)


class RowWriter:
    """What the writers of both engines share: a failure rolled back and worded as vipcli words it,
    and the slow path (one purchase through `sales.record_purchase`, with every constraint on)."""

    def _failed(self, exc: sqlite3.Error) -> DatabaseProblem:
        """The transaction rolled back, and the failure as vipcli words it."""
        from vipcli.db import translate

        try:
            self.rollback()
        except sqlite3.Error:
            pass
        return translate(exc)

    def slow(self, sale: tuple) -> None:
        """One purchase through `sales.record_purchase`, inside the open transaction; a refusal
        undoes what it wrote (a savepoint) and is raised for the importer to reject the row."""
        from vipcli import sales

        receipt, card_no, phone, store, at, regular, promo, paid = sale
        self._before_slow()
        self.conn.execute("SAVEPOINT slow")
        self._checked(True)
        try:
            sales.record_purchase(self.conn, self.rules, sales.Sale(
                regular=regular, promo=promo, paid=paid, card_no=card_no, phone=phone, receipt=receipt,
                store=store, at=at), self.now, self.operator)
        except VipError:
            self.conn.execute("ROLLBACK TO slow")
            self.conn.execute("RELEASE slow")
            raise
        finally:
            self._checked(False)
        self.conn.execute("RELEASE slow")

    def _before_slow(self) -> None:
        pass

    def _checked(self, on: bool) -> None:
        """The constraints this writer leaves to construction, back on (`on`) or off again."""


class Writer(RowWriter):
    """The writer in this process: the same calls, answered at once."""

    def __init__(self, path, rules, now, operator):
        from vipcli.db import connect

        from vipcli.dates import iso

        self.rules, self.now, self.operator = rules, now, operator
        self.path = str(path)
        self.tail = (rules.version, operator, iso(now))  # a purchase's last columns, the same for all
        self.conn = connect(path)
        conn = self.conn
        # Foreign keys are checked by construction (every id is taken from what the import or the
        # database holds) and by `vip check`; SQLite's per-row checks would cost a third of the
        # write time. An 8 MB page cache holds the indexes that take random inserts (phones) for a
        # hundred thousand customers; the purchases rows and receipts are appended.
        conn.execute("PRAGMA foreign_keys = OFF")
        # CHECK constraints likewise: the rows meet them by construction (amounts validated, kinds
        # and states constants), and a `kind IN (...)` check rebuilds its list for every row: a
        # third of the ledger's and cards' inserts. `slow` (sales.record_purchase) has them back.
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("PRAGMA cache_size = -8192")
        # Each transaction is still atomic (WAL); NORMAL only lets a power cut lose the last ones'
        # durability, and re-running the import (idempotent by receipt) puts them back.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Committed pages are copied from the WAL into the database by a thread of ours with its
        # own connection, beside the next transaction's inserts (a PASSIVE checkpoint waits for
        # nobody, and SQLite's C code runs without the GIL). At each commit (autocheckpoint) the
        # importer waited for the copy; left to the end, it waited for all of it at once.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.checkpoints = _Checkpoints(path)
        self.seen_version = None
        self.open = False

    def begin(self, defer_index: bool = False) -> bool:
        """Take the write lock; True when another process wrote since our last commit. A first
        load (no purchases yet, a large file: the importer decides) drops purchases(customer_id,
        purchased_at) in its first transaction and builds it once at the end: a sort instead of a
        random B-tree insert per row, a third of the writing. The pid in meta tells other commands
        the index is not lost but on its way (db._restore_deferred_index)."""
        from vipcli.db import let_waiters_in, translate

        if self._wal_size() > WAL_LIMIT:
            # The WAL restarts from its beginning at a BEGIN once a checkpoint has copied all of
            # it; checkpoints running beside the inserts never let that happen, so now and then
            # (every ~256 MB written) this BEGIN waits for one.
            self.checkpoints.ask()
            self.checkpoints.wait()
        let_waiters_in(self.conn)  # a till waiting for the lock goes first: it waits one transaction at most
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise translate(exc) from None
        self.open = True
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        changed = self.seen_version is not None and version != self.seen_version
        self.seen_version = version
        if defer_index and os.name == "posix":
            from vipcli.db import defer_index as drop_index

            drop_index(self.conn, os.getpid())
        elif changed:
            # Another process is using the database (and the importer will read customers'
            # histories back): the index comes back now.
            self._build_index(inside=True)
        return changed

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def write(self, pending: dict) -> None:
        conn = self.conn
        try:
            for table in TABLES:
                rows = pending.get(table)
                if rows:
                    if table == "purchases":
                        tail = self.tail
                        rows = [row + tail for row in rows]
                    conn.executemany(SQL[table], rows)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        self.open = False
        self.seen_version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        self.checkpoints.ask()

    def rollback(self) -> None:
        # (SQLite's own state, not the flag: Ctrl-C may land between a COMMIT and the flag's reset,
        # and a ROLLBACK with no transaction fails, which turned Ctrl-C into a database error)
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.open = False

    def _checked(self, on: bool) -> None:
        self.conn.execute(f"PRAGMA ignore_check_constraints = {'OFF' if on else 'ON'}")

    def close(self) -> None:
        """After the last commit: the deferred index built (if this import deferred it)."""
        self.rollback()
        self._build_index()
        self.checkpoints.stop()  # what is left is copied by the importer's last commit
        self.conn.close()

    def abandon(self) -> None:
        self.rollback()
        self.checkpoints.stop()
        self.conn.close()  # a deferred index is rebuilt by the next command (db.connect)

    def _build_index(self, inside: bool = False) -> None:
        """The deferred index, if it is missing (in the open transaction, or in one of its own)."""
        from vipcli.db import build_deferred_index, has_deferrable_index, transaction

        if has_deferrable_index(self.conn):
            return
        if inside:
            build_deferred_index(self.conn)
            return
        with transaction(self.conn):
            build_deferred_index(self.conn)


# A WAL larger than this is copied out whole before the next transaction, so that it restarts.
WAL_LIMIT = 256 << 20


class _Checkpoints:
    """A thread that runs PASSIVE checkpoints when asked (after a commit), on its own connection."""

    def __init__(self, path):
        import threading

        self.path = str(path)
        self.changed = threading.Condition()
        self.asked = self.done = 0  # requests made, and the last request a finished checkpoint covered
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="vipcli-checkpoints", daemon=True)
        self.thread.start()

    def ask(self) -> None:
        with self.changed:
            self.asked += 1
            self.changed.notify_all()

    def wait(self) -> None:
        """Until a checkpoint that started after the last ask() has finished."""
        with self.changed:
            self.changed.wait_for(lambda: self.done >= self.asked or not self.thread.is_alive())

    def stop(self) -> None:
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        self.thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                with self.changed:
                    self.changed.wait_for(lambda: self.stopping or self.asked > self.done)
                    if self.stopping:
                        return
                    covered = self.asked
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # a checkpoint that could not run now runs at a later commit, or at the end
                with self.changed:
                    self.done = covered
                    self.changed.notify_all()
        finally:
            conn.close()
            with self.changed:
                self.changed.notify_all()


class WriterProcess:
    """The writer in a second process, behind a pipe."""

    def __init__(self, path=None, rules=None, now=None, operator=None):
        """Starts the process; without arguments it only boots (Python and its imports take about
        a tenth of a second), and start() tells it the database later."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "vipcli.io.writer"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        _widen(self.proc.stdin)
        if path is not None:
            self.start(path, rules, now, operator)

    def start(self, path, rules, now, operator) -> None:
        self._send(("start", str(path), rules, now, operator))

    def _send(self, message) -> None:
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._stopped() from None

    def _answer(self):
        try:
            reply = pickle.load(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError):
            raise self._stopped() from None
        if reply[0] != "ok":  # "reject": the row is refused; "error": the import stops (DatabaseProblem)
            raise _rebuild(*reply[1:])
        return reply[1]

    def _stopped(self) -> DatabaseProblem:
        code = self.proc.poll()
        return DatabaseProblem(_("the import's writer process stopped (exit {code}); nothing of the unfinished "
                                 "transaction was written, run the import again").format(
                                   code=code))

    def begin(self, defer_index: bool = False) -> bool:
        self._send(("begin", defer_index))
        return self._answer()

    def write(self, pending: dict) -> None:
        self._send(("write", pending))

    def commit(self) -> None:
        self._send(("commit",))

    def rollback(self) -> None:
        self._send(("rollback",))

    def slow(self, sale: tuple) -> None:
        self._send(("slow", sale))
        self._answer()

    def close(self) -> None:
        self._send(("close",))
        try:
            self._answer()
        finally:
            self._stop()

    def abandon(self) -> None:
        self._stop()

    def _stop(self) -> None:
        """Stop the writer without waiting for more answers (it rolls back what is open)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


F_SETPIPE_SZ = 1031  # Linux's fcntl to resize a pipe


def _widen(pipe) -> None:
    """A pipe that holds a whole chunk's rows (about 250 KB pickled; the default is 64 KB): the
    importer hands a chunk over and goes on with the next while the writer is still busy with the
    one before, instead of waiting for it to read."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    try:
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass  # above the system's limit (/proc/sys/fs/pipe-max-size): the default pipe still works


def _rebuild(kind: str, message: str, code: str) -> VipError:
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, VipError)):
        cls = DatabaseProblem
    return cls(message, code=code)


def _serve(source, sink) -> None:
    """The writer process: answer the importer's messages until it closes the pipe."""
    writer = None
    failed = None  # the first failure, raised at the next answer; writes are skipped meanwhile
    while True:
        try:
            message = pickle.load(source)
        except EOFError:
            break
        kind, args = message[0], message[1:]
        answers = kind in ("begin", "slow", "close")
        if failed is not None:
            if answers:
                _reply(sink, ("error", *failed))
                failed = None
            continue
        try:
            if kind == "start":
                writer = writer_for(*args)
            elif kind == "slow":
                try:
                    writer.slow(*args)
                except VipError as exc:  # the row is refused; the transaction goes on
                    if isinstance(exc, DatabaseProblem):
                        raise
                    _reply(sink, ("reject", type(exc).__name__, exc.message, exc.code))
                    continue
                _reply(sink, ("ok", None))
            elif kind == "close":
                writer.close()
                writer = None
                _reply(sink, ("ok", None))
                break
            else:
                result = getattr(writer, kind)(*args)
                if answers:
                    _reply(sink, ("ok", result))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the importer
            if writer is not None:
                try:
                    writer.rollback()
                except sqlite3.Error:
                    pass
            error = _as_database_problem(exc)
            failed = (type(error).__name__, error.message, error.code)
            if answers:
                _reply(sink, ("error", *failed))
                failed = None
    if writer is not None:
        writer.abandon()  # the importer went away: what is not committed is rolled back


def _as_database_problem(exc: BaseException) -> VipError:
    if isinstance(exc, DatabaseProblem):
        return exc
    if isinstance(exc, sqlite3.Error):
        from vipcli.db import translate

        return translate(exc)
    return DatabaseProblem(_("the import's writer failed: {name}: {exc}").format(name=type(exc).__name__, exc=exc))


def _reply(sink, message) -> None:
    pickle.dump(message, sink, protocol=pickle.HIGHEST_PROTOCOL)
    sink.flush()


def main() -> None:
    import gc
    import signal

    gc.disable()  # a short-lived loop that makes no reference cycles
    # Ctrl-C at the terminal reaches the whole process group: the importer handles it (it closes
    # the pipe, and this process then rolls back), so it must not stop this one half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        _serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the importer is gone; SQLite rolls back what was not committed


if __name__ == "__main__":
    main()
