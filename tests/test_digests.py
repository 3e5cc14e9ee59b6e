"""The per-user store of file digests: hashed once, never served for other content."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time

from acsprov.provenance.digests import DigestStore, file_state, store_path


def _old_file(path, content: bytes):
    """A file whose mtime is a day old (its ctime is now: tests use ``settle=0``)."""
    path.write_bytes(content)
    day_ago = time.time() - 86400
    os.utime(path, (day_ago, day_ago))
    return path


def _rows(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT ino, size, sha256 FROM digest").fetchall()


def test_a_settled_file_is_hashed_once_and_found_by_another_store(tmp_path):
    ref = _old_file(tmp_path / "ref.fits", b"reference" * 1000)
    db = tmp_path / "cache" / "sha256.sqlite3"
    expected = hashlib.sha256(ref.read_bytes()).hexdigest()
    assert DigestStore(db, settle=0).sha256(ref) == expected
    assert _rows(db) == [(ref.stat().st_ino, ref.stat().st_size, expected)]
    # a second store (as in another process) answers from the table, not the content:
    # a planted digest under the file's exact state proves the content was not read
    with sqlite3.connect(db) as con:
        con.execute("UPDATE digest SET sha256 = 'planted'")
    assert DigestStore(db, settle=0).sha256(ref) == "planted"


def test_rewritten_content_is_hashed_again_even_with_its_old_mtime(tmp_path):
    ref = _old_file(tmp_path / "ref.fits", b"A" * 4096)
    db = tmp_path / "sha256.sqlite3"
    store = DigestStore(db, settle=0)
    store.sha256(ref)
    st = ref.stat()
    time.sleep(0.01)
    with open(ref, "r+b") as fh:  # same size, same inode, mtime set back: only ctime moves
        fh.write(b"B")
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (ref.stat().st_ino, ref.stat().st_size, ref.stat().st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    assert DigestStore(db, settle=0).sha256(ref) == hashlib.sha256(ref.read_bytes()).hexdigest()


def test_a_file_written_just_now_is_not_kept(tmp_path):
    fresh = tmp_path / "flt.fits"
    fresh.write_bytes(b"product")
    db = tmp_path / "sha256.sqlite3"
    store = DigestStore(db)  # the default settling time
    assert store.sha256(fresh) == hashlib.sha256(b"product").hexdigest()
    assert not store.put(file_state(fresh.stat()), "x" * 64, started=time.time())
    assert _rows(db) == []


def test_a_damaged_or_unwritable_store_only_costs_the_hashing(tmp_path):
    ref = _old_file(tmp_path / "ref.fits", b"data")
    expected = hashlib.sha256(b"data").hexdigest()
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"not a database" * 100)
    assert DigestStore(damaged, settle=0).sha256(ref) == expected
    assert damaged.read_bytes() == b"not a database" * 100
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert DigestStore(blocked / "sha256.sqlite3", settle=0).sha256(ref) == expected
    victim = tmp_path / "someone-elses.txt"  # empty: sqlite would make it a database
    victim.write_text("")
    link = tmp_path / "linked.sqlite3"
    link.symlink_to(victim)
    assert DigestStore(link, settle=0).sha256(ref) == expected
    assert victim.read_text() == ""


def test_the_store_is_the_user_cache_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert store_path() == tmp_path / "acsprov" / "sha256.sqlite3"
    monkeypatch.setenv("ACSPROV_DIGEST_CACHE", "off")
    assert store_path() is None
    ref = _old_file(tmp_path / "ref.fits", b"x")
    assert DigestStore(store_path(), settle=0).sha256(ref) == hashlib.sha256(b"x").hexdigest()
    assert not (tmp_path / "acsprov").exists()


def test_a_recorder_in_a_new_process_reuses_a_reference_digest(tmp_path, monkeypatch):
    """The recorder's hashes go through the store: a second process records the kept
    digest of an unchanged reference file (planted here, so a re-hash would show)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    refdir = tmp_path / "refs"
    refdir.mkdir()
    ref = _old_file(refdir / "x_bia.fits", b"bias" * 1000)
    time.sleep(2.1)  # the default settling time: the ctime of the reference must be older
    script = (
        "import sys, json; from pathlib import Path; from acsprov.provenance import Recorder\n"
        "rec = Recorder(Path(sys.argv[1]), name='t', datalad=False)\n"
        "with rec.activity('look', params={}) as act:\n"
        "    print(act.sha256(Path(sys.argv[2])))\n"
    )
    run = [sys.executable, "-c", script, str(tmp_path / "work"), str(ref)]
    first = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    assert first == hashlib.sha256(ref.read_bytes()).hexdigest()
    with sqlite3.connect(tmp_path / "xdg" / "acsprov" / "sha256.sqlite3") as con:
        con.execute("UPDATE digest SET sha256 = 'kept'")
    second = subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()
    assert second == "kept"
