"""sha256 of file versions, kept across processes in the user's cache.

Every calibration hashes the reference files it reads, for its PROV record: for one
WFC exposure that is about 400 MB of bias, dark, flat, saturation and sink images,
more CPU time than some of the calibration steps.  Reference files never change, so
each version of one is hashed once per machine, as git and git-annex do for their
work trees: a digest is kept under the file's identity and state
``(device, inode, size, mtime, ctime)`` in a small SQLite table,
``$XDG_CACHE_HOME/acsprov/sha256.sqlite3`` (``~/.cache/...`` without
``XDG_CACHE_HOME``; ``ACSPROV_DIGEST_CACHE=off`` turns it off).

Rewriting a file changes its ctime, which no user can set back, so a kept digest is
never served for other content.  Only files whose mtime and ctime were already
:data:`SETTLE_SECONDS` old when hashing began are kept (git's "racy" rule: a file
written in the same clock tick as it is hashed could change again unseen), and only
if the file's state did not change while it was hashed.  The table is only ever a
shortcut: if it cannot be read or written (a read-only home, a damaged file, another
process holding it too long) acsprov hashes the file as if it were not there.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from ..fitsutil import sha256sum

__all__ = ["SETTLE_SECONDS", "DigestStore", "default_store", "file_state", "store_path"]

#: How old (seconds) a file's mtime and ctime must be when its hashing starts for
#: the digest to be kept.
SETTLE_SECONDS = 2.0
#: Entries not used for this long (seconds) are dropped when new ones are kept.
EXPIRE_SECONDS = 90 * 86400.0
#: A used entry's last use is brought up to date at most this often (seconds).
_TOUCH_SECONDS = 86400.0
#: How long (seconds) to wait for another process's write to the table.
_BUSY_SECONDS = 0.5

State = tuple[int, int, int, int, int]


def file_state(st: os.stat_result) -> State:
    """``(device, inode, size, mtime_ns, ctime_ns)`` of a file's ``stat``."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def store_path() -> Path | None:
    """Where the digests are kept, or None when ``ACSPROV_DIGEST_CACHE`` is ``off``."""
    if os.environ.get("ACSPROV_DIGEST_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acsprov" / "sha256.sqlite3"


class DigestStore:
    """A persistent map from file states (:func:`file_state`) to sha256 digests.

    Parameters
    ----------
    path : path-like or None
        The SQLite file (made on first use, with its directory); None keeps nothing.
    settle : float
        See :data:`SETTLE_SECONDS`.

    Notes
    -----
    Safe to share between threads, and between processes (SQLite's locking); a
    process killed while writing leaves the table as it was before the write.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *,
                 settle: float = SETTLE_SECONDS) -> None:
        self.path = Path(path) if path is not None else None
        self.settle = settle
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._broken = self.path is None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                assert self.path is not None
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.is_symlink():  # never written through a link
                    raise OSError(f"{self.path} is a symbolic link")
                db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS,
                                     check_same_thread=False, isolation_level=None)
                db.execute("CREATE TABLE IF NOT EXISTS digest (dev INTEGER, ino INTEGER, "
                           "size INTEGER, mtime INTEGER, ctime INTEGER, sha256 TEXT, "
                           "seen REAL, PRIMARY KEY (dev, ino, size, mtime, ctime))")
                self._db = db
            except (OSError, sqlite3.Error):
                self._broken = True
        return self._db

    def get(self, state: State) -> str | None:
        """The digest kept for a file in `state`, if any."""
        with self._lock:
            db = self._connect()
            if db is None:
                return None
            try:
                row = db.execute("SELECT sha256, seen FROM digest WHERE dev=? AND ino=? "
                                 "AND size=? AND mtime=? AND ctime=?", state).fetchone()
                now = time.time()
                if row is not None and now - row[1] > _TOUCH_SECONDS:
                    db.execute("UPDATE digest SET seen=? WHERE dev=? AND ino=? AND size=? "
                               "AND mtime=? AND ctime=?", (now, *state))
            except sqlite3.Error:
                return None
        return row[0] if row else None

    def put(self, state: State, sha256: str, *, started: float) -> bool:
        """Keep `sha256` for `state` if the file had settled by `started` (``time.time()``
        when its hashing began); return whether it was kept."""
        limit = int((started - self.settle) * 1e9)
        if state[3] > limit or state[4] > limit:
            return False
        with self._lock:
            db = self._connect()
            if db is None:
                return False
            now = time.time()
            try:
                db.execute("INSERT OR REPLACE INTO digest VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (*state, sha256, now))
                db.execute("DELETE FROM digest WHERE seen < ?", (now - EXPIRE_SECONDS,))
            except sqlite3.Error:
                return False
        return True

    def sha256(self, path: str | os.PathLike[str]) -> str:
        """The sha256 of `path`: kept, else computed (and kept if the file has settled)."""
        before = file_state(os.stat(path))
        kept = self.get(before)
        if kept is not None:
            return kept
        started = time.time()
        digest = sha256sum(path)
        if file_state(os.stat(path)) == before:
            self.put(before, digest, started=started)
        return digest

    def close(self) -> None:
        """Close the table (it is reopened if used again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_default: DigestStore | None = None
_default_lock = threading.Lock()


def default_store() -> DigestStore:
    """The process's store at :func:`store_path` (made again, the old one closed, if
    the path changed)."""
    global _default
    path = store_path()
    with _default_lock:
        if _default is None or _default.path != path:
            if _default is not None:
                _default.close()
            _default = DigestStore(path)
        return _default
