"""Resident ID numbers at rest: AES-GCM ciphertext plus an HMAC for exact lookup and uniqueness.

The key lives in a file of its own, never inside the database: VIPCLI_KEY_FILE, else beside the
database (`vip.db` -> `vip.db.key`, so that a copied folder keeps both), created 0600 on first need. The database remembers a
fingerprint of its key, so a missing or different key fails closed instead of silently writing
data that the old key can no longer read. `cryptography` is imported only here, only when an ID
number is written or unmasked.
"""

import base64
import binascii
import hashlib
import hmac
import os
from contextlib import contextmanager
from pathlib import Path

from vipcli.places import app_dir
from vipcli.errors import DatabaseProblem
from vipcli.i18n import _

_FINGERPRINT_KEY = "key_fingerprint"


def key_path(conn) -> Path:
    """VIPCLI_KEY_FILE, else `DATABASE.key` beside the database file. A database whose key was made
    before keys moved beside it (the app directory's `vip.key`) keeps finding it there."""
    from vipcli.db import file_path

    candidates = key_candidates(file_path(conn))
    if len(candidates) == 1:
        return candidates[0]  # VIPCLI_KEY_FILE
    beside, legacy = candidates
    if not beside.exists() and legacy.exists() and has_key(conn):
        return legacy
    return beside


def key_candidates(db_path) -> list[Path]:
    """Every file that is or was this database's key: VIPCLI_KEY_FILE, else beside the database,
    and the app directory's `vip.key` of older installs. A chain's database (PostgreSQL) has no file
    to stand beside: its key is the app directory's `vip.key`, copied to each till that reads IDs."""
    from vipcli.pg import is_url

    configured = os.environ.get("VIPCLI_KEY_FILE")
    legacy = app_dir() / "vip.key"
    if configured:
        return [Path(configured)]
    if db_path is None or is_url(str(db_path)):
        return [legacy]
    return [Path(f"{db_path}.key"), legacy]


def stored_ids(conn) -> int:
    """How many archives hold an (encrypted) ID number."""
    return conn.execute("SELECT COUNT(*) FROM customers WHERE id_enc IS NOT NULL").fetchone()[0]


def has_key(conn) -> bool:
    """Whether this database has ever written an ID number (and so needs its key file)."""
    from vipcli.db import get_meta

    return get_meta(conn, _FINGERPRINT_KEY) is not None


class Vault:
    def __init__(self, key: bytes):
        self._enc_key, self._mac_key = key[:32], key[32:]

    def fingerprint(self) -> str:
        return hmac.new(self._mac_key, b"vipcli key check", hashlib.sha256).hexdigest()[:16]

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        return nonce + AESGCM(self._enc_key).encrypt(nonce, value.encode(), b"vipcli-id")

    def decrypt(self, blob: bytes) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(self._enc_key).decrypt(blob[:12], blob[12:], b"vipcli-id").decode()
        except InvalidTag:
            raise DatabaseProblem(_("an encrypted ID number does not open with this key file"),
                                  code="wrong_key") from None


def _read_key(path: Path) -> bytes:
    """A key file's 64 bytes. Refused when others may read it (as ssh refuses a private key): the
    key opens every ID number."""
    mode = path.stat().st_mode
    if os.name == "posix" and mode & 0o077:
        raise DatabaseProblem(_("key file {path} can be read by others (mode {value:o}); make it private: chmod "
                                "600 {path}").format(
                                  path=path, value=mode & 511), code="insecure_key")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 64:
        raise DatabaseProblem(_("key file {path} is not a vipcli key").format(path=path), code="wrong_key")
    return key


def retired_keys(path: Path) -> list[Path]:
    """The keys rotations retired (KEY.1, KEY.2, ... oldest first): kept until the operator deletes
    them, since the backups written before each rotation need theirs."""
    found = [p for p in path.parent.glob(path.name + ".*") if p.name[len(path.name) + 1:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(path.name) + 1:]))


def retire(path: Path) -> Path:
    """Move the key in force to the next free KEY.N (0600, as it was)."""
    kept = retired_keys(path)
    number = int(kept[-1].name[len(path.name) + 1:]) + 1 if kept else 1
    target = path.with_name(f"{path.name}.{number}")
    os.link(path, target)  # (fails if it exists: never over another retired key)
    os.unlink(path)
    return target


def key_for(path: Path, fingerprint: str) -> Path | None:
    """Which of the key in force and the retired ones has this fingerprint."""
    for candidate in [path, *reversed(retired_keys(path))]:
        try:
            if candidate.exists() and Vault(_read_key(candidate)).fingerprint() == fingerprint:
                return candidate
        except DatabaseProblem:
            continue
    return None


@contextmanager
def rotation_lock(path: Path, wait: bool = True):
    """KEY.lock, held by a rotation from its start to its last rename: one at a time, and nobody
    finishes a rotation (below) that is still running. BlockingIOError when busy and not `wait`."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.name == "posix":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def _finish_rotation(path: Path, expected: str | None) -> None:
    """A rotation that committed but was cut off before renaming its new key file: finish it."""
    pending = path.with_name(path.name + ".new")
    if expected is None or not pending.exists():
        return
    with rotation_lock(path):
        finish_rotation_locked(path, expected)


def finish_rotation_locked(path: Path, expected: str | None) -> None:
    """The same, by a process that holds the rotation lock."""
    pending = path.with_name(path.name + ".new")
    if expected is None or not pending.exists():
        return  # (or the rotation finished it meanwhile)
    if Vault(_read_key(pending)).fingerprint() == expected:
        if path.exists():
            retire(path)
        os.replace(pending, path)


def open_vault(conn, create: bool, rotating: bool = False) -> Vault:
    """The key for this database; created (0600) only when `create` and the database has none."""
    from vipcli.db import get_meta, set_meta

    path = key_path(conn)
    expected = get_meta(conn, _FINGERPRINT_KEY)
    if rotating:  # (a rotation holds the lock that finishing one takes)
        finish_rotation_locked(path, expected)
    else:
        _finish_rotation(path, expected)
    if path.exists():
        found = Vault(_read_key(path))
        if expected is not None and expected != found.fingerprint() and not conn.in_transaction and not rotating:
            # A rotation may have committed and renamed its key between our two reads: once it has
            # finished (its lock), read both again.
            with rotation_lock(path):
                expected = get_meta(conn, _FINGERPRINT_KEY)
                found = Vault(_read_key(path))
        if expected is None:
            set_meta(conn, _FINGERPRINT_KEY, found.fingerprint())
        elif expected != found.fingerprint():
            raise DatabaseProblem(
                _("key file {path} is not the key this database was written with; set VIPCLI_KEY_FILE to the right "
                  "one").format(
                    path=path), code="wrong_key")
        return found
    if expected is not None or not create:
        raise DatabaseProblem(
            _("key file {path} is missing; ID numbers can't be read or written without it (set VIPCLI_KEY_FILE)").format(
                path=path), code="missing_key")
    key = os.urandom(64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key))
    created = Vault(key)
    set_meta(conn, _FINGERPRINT_KEY, created.fingerprint())
    return created
