"""The one recorder that wraps every action acsprov performs.

Usage (the shape every caller follows)::

    rec = Recorder(root, name="example1")
    with rec.activity("set_header", params=edits, command=cli_equivalent, cwd=rundir) as act:
        act.used(raw, role="raw")
        edit = set_header(raw, edits)          # the action knows nothing of `rec`
        act.generated(raw, role="raw", derived_from=[raw])

On leaving the block the recorder closes the activity (end time, status), writes the
run's PROV document atomically to ``<root>/prov/<run id>.json`` and, when `root` is a
DataLad dataset, commits the outputs and the document with a run record of the
command.  If the block raises, the activity is recorded with ``status=error``, nothing
is committed, and the exception propagates unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..fitsutil import atomic_path, sha256sum
from . import _datalad
from .digests import default_store
from .records import ActivityRecord, FileEntity, RunRecord
from .software import image_identity, software_versions, user_name
from .stamp import Stamp, stamping

__all__ = ["RESERVED_ATTRIBUTES", "Activity", "Recorder"]

#: Attributes the recorder writes itself for every activity (see ``_prov._activity``).
RESERVED_ATTRIBUTES = frozenset({"parameters", "status", "command", "cwd", "message"})


class _HashCache:
    """sha256 of files, recomputed only when size, mtime or inode change.

    Files earlier processes hashed are looked up in the user's digest store first
    (:mod:`acsprov.provenance.digests`): reference files are hashed once per machine.

    :meth:`prefetch` hashes files in a background thread (``hashlib`` releases the
    GIL on large buffers) while the action runs; asking for a file's hash then waits
    for its background result, if the file is still as it was when prefetched.
    """

    def __init__(self) -> None:
        self._store = default_store()
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._pending: dict[tuple[int, int, int, int], Future[str]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.seconds = 0.0

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def __call__(self, path: Path) -> tuple[str, int]:
        st = os.stat(path)
        key = self._key(st)
        with self._lock:
            pending = self._pending.pop(key, None)
        if key not in self._cache:
            start = time.perf_counter()
            self._cache[key] = (pending.result() if pending is not None
                               else self._store.sha256(path))
            self.seconds += time.perf_counter() - start
        return self._cache[key], st.st_size

    def prefetch(self, paths: Iterable[Path]) -> None:
        """Start hashing `paths` (files the action reads, never writes) in the background."""
        for path in paths:
            try:
                key = self._key(os.stat(path))
            except OSError:
                continue
            with self._lock:
                if key in self._cache or key in self._pending:
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="acsprov-hash")
                self._pending[key] = self._pool.submit(self._store.sha256, path)

    def remember(self, path: Path, sha256: str) -> int:
        """Note a checksum computed elsewhere for `path` as it is now; return its size."""
        st = os.stat(path)
        self._cache[self._key(st)] = sha256
        return st.st_size


class Activity:
    """Handle of a running activity: declare what it used and generated."""

    def __init__(self, recorder: Recorder, record: ActivityRecord) -> None:
        self._rec = recorder
        self.record = record
        self._outputs: list[Path] = []
        self._inputs: list[Path] = []
        self.command_cwd: Path | None = None
        """Where the activity's command runs, if not its ``cwd``."""

    @property
    def id(self) -> str:
        """The activity's identifier."""
        return self.record.id

    def relpath(self, path: str | os.PathLike[str]) -> str:
        """`path` as recorded: relative to the dataset root, or absolute outside it."""
        return self._rec.relpath(Path(path))

    def used(self, path: str | os.PathLike[str], *, role: str, sha256: str | None = None,
             **attributes: object) -> Path:
        """Record that the activity read `path` (as it is now); return the path."""
        path = Path(path)
        item = self._rec.entity(path, role, sha256, attributes)
        # one usage per file version and role (a reference file read for each of
        # several inputs is used once)
        if not any(u.key == item.key and u.role == item.role for u in self.record.used):
            self.record.used.append(item)
        self._inputs.append(path)
        return path

    def prefetch(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Hash files the activity will declare used, in the background meanwhile."""
        self._rec._hash.prefetch(Path(p) for p in paths)

    def sha256(self, path: str | os.PathLike[str]) -> str:
        """The sha256 of `path` as it is now (each version of a file is hashed once)."""
        return self._rec._hash(Path(path))[0]

    def used_sha256(self, path: str | os.PathLike[str]) -> str:
        """The sha256 recorded for `path` when the activity declared it used."""
        rel = self._rec.relpath(Path(path))
        return next(e.sha256 for e in reversed(self.record.used) if e.path == rel)

    def generated(self, path: str | os.PathLike[str], *, role: str,
                  derived_from: Iterable[str | os.PathLike[str]] = (),
                  sha256: str | None = None, **attributes: object) -> Path:
        """Record that the activity wrote `path`; return the path.

        `sha256` may be given for intermediate files that no longer exist (calacs
        deletes its ``_blv_tmp`` files); `derived_from` names used or generated
        paths of this activity the file was made from.
        """
        path = Path(path)
        item = self._rec.entity(path, role, sha256, attributes)
        self.record.generated.append(item)
        if sha256 is None or path.exists():
            self._outputs.append(path)
        sources = {self._rec.relpath(Path(p)) for p in derived_from}
        for candidate in reversed(self.record.used + self.record.generated[:-1]):
            if candidate.path in sources:
                self.record.derivations.append((item.key, candidate.key))
                sources.discard(candidate.path)
        return path

    def note(self, **attributes: object) -> None:
        """Attach facts (CRDS context, switches in force, header changes...).

        The activity's own attributes (its parameters, status, command...) cannot be
        overwritten: an audit re-runs the step from its recorded parameters.
        """
        clash = sorted(set(attributes) & RESERVED_ATTRIBUTES)
        if clash:
            raise ValueError(f"activity attribute {clash[0]!r} is the recorder's own")
        for key, value in attributes.items():
            self.record.attributes[key] = value if isinstance(value, str) else json.dumps(
                value, sort_keys=True, default=str)

    def engine(self, **info: str) -> None:
        """Name the calibration engine that did the work (name, version, ...)."""
        self.record.engine = {k: str(v) for k, v in info.items()}


class Recorder:
    """Records a run's activities as W3C-PROV, and as DataLad commits when it can.

    Parameters
    ----------
    root : Path
        The dataset (or plain directory) the run works in; paths are recorded
        relative to it, and the PROV document goes to ``root/prov/``.
    name : str
        A name for the run (e.g. ``jd1y04010``).
    datalad : bool
        Make `root` a DataLad dataset and commit each action (default True).
    aliases : mapping, optional
        Directories outside `root` recorded under a symbolic prefix instead of their
        absolute path, e.g. ``{jref_dir: "jref$"}`` for the CRDS reference directory.
    persist : bool
        Write the PROV document (default True).  ``acsprov step``, which DataLad's
        ``rerun`` executes, runs its action in an unpersisted recorder: the rerun is
        recorded by DataLad itself.
    background : bool
        Make each action's DataLad commit in a background thread, in order, while the
        next action runs (a recipe run).  The outputs are frozen (hard-linked) when
        the action ends, so a later action may replace them meanwhile.  An activity
        waits for the commit before it starts unless it is opened with
        ``overlap=True`` (it writes files only by replacing them, never in place), or
        if it will write in place a file the commit still holds.  Call :meth:`close`
        (or :meth:`export`) at the end.
    """

    def __init__(self, root: Path, *, name: str, datalad: bool = True,
                 aliases: Mapping[str | os.PathLike[str], str] | None = None,
                 persist: bool = True, background: bool = False) -> None:
        self.root = Path(root).absolute()
        for own in (self.root / "prov", self.root / ".git"):
            if own.is_symlink():  # a handed-over work directory must not lead writes away
                from ..errors import UnsafePathError

                raise UnsafePathError(f"{own} is a symbolic link; acsprov never follows "
                                      "its own files' links: remove it")
        self.aliases = {Path(os.path.abspath(k)): v for k, v in (aliases or {}).items()}
        self.reference_attributes: Callable[[Path], Mapping[str, str]] | None = None
        """Extra attributes of files outside the root (the CRDS facts of a reference
        file: its CRDS name, the server's sha1, context and server), or None."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run = RunRecord(
            run_id=f"{stamp}-{uuid.uuid4().hex[:8]}",
            name=name,
            root=self.root.name,
            software=software_versions(),
            user=user_name(),
            image=image_identity(),
        )
        self.run.aliases = {}
        for directory, prefix in list(self.aliases.items()):
            self.add_alias(directory, prefix)
        self.datalad = datalad and persist
        self.persist = persist
        if self.datalad:
            _datalad.ensure_dataset(self.root)
        self.document_path = self.root / "prov" / f"{self.run.run_id}.json"
        self._hash = _HashCache()
        self._document_sha = ""
        self.prior_history: tuple[str, ...] = ()
        """Actions before this recorder's own (a re-run continues a recorded run)."""
        self._overhead = 0.0  # seconds spent writing documents and committing
        self._doc_seconds = 0.0  # of which writing documents
        self._action = 0.0  # seconds inside activity blocks, hashing excluded
        self.background = background and self.datalad
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="acsprov-commit") \
            if self.background else None
        self._pending: Future[None] | None = None
        self._holders: dict[Path, Future[None]] = {}
        """Output -> the queued commit that froze it last (hard links of it)."""
        self._commit_seconds = 0.0  # seconds the commits took (in the background or not)
        self._export_seconds = 0.0  # seconds writing and committing the PROV exports

    # -- paths and entities -------------------------------------------------
    def add_alias(self, directory: str | os.PathLike[str], prefix: str) -> None:
        """Record files below `directory` as ``prefix`` + name (``jref$``), and say in the
        run's PROV where the prefix pointed: relative to the dataset's root when it is
        inside it (a clone resolves it there), else absolute."""
        directory = Path(os.path.abspath(directory))
        self.aliases[directory] = prefix
        inside = self._inside(directory)
        self.run.aliases[prefix] = (directory.relative_to(self.root).as_posix() if inside
                                    else str(directory))

    def relpath(self, path: Path) -> str:
        """`path` as recorded: under an alias (``jref$``), else relative to the root
        (POSIX), else absolute."""
        absolute = Path(os.path.abspath(path))
        for directory, prefix in self.aliases.items():  # even inside the root (crds/)
            try:
                return prefix + absolute.relative_to(directory).as_posix()
            except ValueError:
                continue
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return absolute.as_posix()

    def _inside(self, path: Path) -> bool:
        try:
            Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            return False
        return True

    def entity(self, path: Path, role: str, sha256: str | None,
               attributes: Mapping[str, object]) -> FileEntity:
        """A :class:`FileEntity` for `path` as it is now (or with the given hash)."""
        size = None
        if sha256 is None:
            sha256, size = self._hash(path)
        elif path.exists():
            size = self._hash.remember(path, sha256)
        rel = self.relpath(path)
        aliased = any(rel.startswith(prefix) for prefix in self.aliases.values())
        external = aliased or not self._inside(path)
        if external and self.reference_attributes is not None:
            attributes = {**self.reference_attributes(path), **attributes}
        return FileEntity(
            path=rel, sha256=sha256, role=role, size=size,
            external=external,
            attributes={k: str(v) for k, v in attributes.items()},
        )

    # -- activities ----------------------------------------------------------
    @contextlib.contextmanager
    def activity(self, action: str, *, params: Mapping[str, Any] | None = None,
                 command: str | None = None, cwd: Path | None = None,
                 label: str | None = None,
                 will_write: Iterable[Path] = (),
                 overlap: bool = False,
                 command_cwd: Path | None = None) -> Iterator[Activity]:
        """Record one action; see the module docstring.

        `will_write` lists existing files the action will write in place (calacs.e
        rewrites association tables): annexed ones are unlocked first, so the action
        can never write into the annex, and are committed with the action.  Files
        replaced atomically (every acsprov write) need no unlocking.  `overlap` says
        the action writes files only by replacing them (a rename, never in place), so
        it may run while the previous action's commit is still being made.
        `command_cwd` is where `command` runs (default `cwd`): the dataset root for
        ``acsprov step --rundir``, whose run directory may not exist yet.
        """
        will_write = [Path(os.path.abspath(p)) for p in will_write]
        if not overlap or any(p.is_symlink() for p in will_write):
            self._wait_timed()
        else:  # a file written in place must first leave the commit holding a link to it
            self._wait_timed([self._holders[p] for p in will_write if p in self._holders])
        previous = self.run.activities[-1].id if self.run.activities else None
        if self.persist and not self._document_sha:
            self.write_document()  # PROVDOC: the document as it stood before the action
        record = ActivityRecord(
            id=str(uuid.uuid4()), action=action, label=label or action,
            started=dt.datetime.now(dt.UTC), params=dict(params or {}), command=command,
            cwd=self.relpath(cwd) if cwd is not None else None, informed_by=previous,
        )
        self.run.activities.append(record)
        handle = Activity(self, record)
        handle.command_cwd = command_cwd
        if self.datalad:
            unlocked = [Path(p) for p in will_write]
            _datalad.unlock(self.root, unlocked)
            handle._outputs.extend(unlocked)  # committed with the action, changed or not
        history = self.prior_history + tuple(
            f"{a.action} ({a.id})" for a in self.run.activities)
        stamp = Stamp(self.run.run_id, record.id, self._document_sha, history)
        hashed = self._hash.seconds
        start = time.perf_counter()
        try:
            with stamping(stamp):
                yield handle
        except BaseException as err:
            record.status = "error"
            record.message = str(err).splitlines()[0] if str(err) else type(err).__name__
            record.ended = dt.datetime.now(dt.UTC)
            self.write_document()
            raise
        record.status = "ok"
        record.ended = dt.datetime.now(dt.UTC)
        self._action += time.perf_counter() - start - (self._hash.seconds - hashed)
        start = time.perf_counter()
        self.write_document()
        if self.datalad:
            self._commit(handle)
        self._overhead += time.perf_counter() - start

    def wait(self) -> None:
        """Wait for the commit being made in the background, if any; raise its error."""
        pending, self._pending = self._pending, None
        self._holders = {}
        if pending is not None:
            pending.result()

    def _wait_timed(self, commits: Iterable[Future[None]] | None = None) -> None:
        """:meth:`wait`, or only until the queued `commits` are made (raising the
        first error of the queue up to them)."""
        start = time.perf_counter()
        try:
            if commits is None:
                self.wait()
            else:
                for commit in commits:
                    commit.result()
        finally:
            self._overhead += time.perf_counter() - start

    def close(self) -> None:
        """Finish the last commit and stop the background committer."""
        try:
            self._wait_timed()
        finally:
            if self._committer is not None:
                self._committer.shutdown(wait=True)
                self._committer = None

    def clear_directory(self, path: Path, *, message: str) -> None:
        """Remove `path` from the dataset's work tree in a commit (history keeps it).

        The directory holds acsprov's working copies and products only: files changed
        since their last commit (a product edited by hand, a half-done run) go too, as
        the run that follows makes them anew.  With background commits the removal is
        committed after the queued commits (they hold links to what they commit).
        """
        if not self.datalad or not os.path.lexists(path):
            return
        if not self._inside(path) or Path(os.path.abspath(path)) == self.root:
            from ..errors import UnsafePathError

            raise UnsafePathError(f"{path}: not a directory inside {self.root}")
        start = time.perf_counter()
        self.run.cleared.append(self.relpath(path))
        doomed = None
        if path.is_symlink() or not path.is_dir():
            path.unlink()  # the link itself, never what it points at
        else:
            # gone at once (a rename); its files are deleted with the commit, in the
            # background, or by the next run if this one is killed first
            doomed = self.root / _datalad.STAGING / f"cleared-{uuid.uuid4().hex}"
            try:
                doomed.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, doomed)
            except OSError:
                doomed = None
                shutil.rmtree(path, ignore_errors=True)

        def commit() -> None:
            try:
                _datalad.commit_removal(self.root, path, message=message)
            finally:
                if doomed is not None:
                    shutil.rmtree(doomed, ignore_errors=True)

        if self._committer is None:
            commit()
        else:
            self._enqueue(commit)
        self._overhead += time.perf_counter() - start

    def commit_files(self, paths: Iterable[Path], *, message: str) -> None:
        """Commit files in a plain commit (no run record: not an action), after the
        commits already queued."""
        if not self.datalad:
            return
        pending = _datalad.freeze_files(self.root, [p for p in paths if p.is_file()],
                                        message=message)
        if self._committer is None:
            self._save(pending)
        else:
            self._enqueue(lambda: self._save(pending))

    def export(self, formats: tuple[str, ...] = ("provn", "turtle"), *,
               graph: bool = True) -> list[Path]:
        """Write the run's document in other formats (and its graph) beside it.

        In a DataLad dataset the exports are committed in one final commit, once the
        commits queued in the background are made: the exports are written meanwhile.
        """
        from ._prov import EXPORT_FORMATS, build_document, serialize

        start = time.perf_counter()
        doc = build_document(self.run)
        written = []
        for fmt in formats:
            target = self.document_path.with_suffix(EXPORT_FORMATS[fmt][2])
            with atomic_path(target) as tmp:
                tmp.write_text(serialize(doc, fmt))
            written.append(target)
        if graph:
            from .graph import draw_graph

            written += draw_graph(self.document_path, self.document_path.with_suffix(""))
        self._export_seconds += time.perf_counter() - start
        self._wait_timed()
        start = time.perf_counter()
        if self.datalad:  # the document too: after a failed action it is not committed
            _datalad.save_paths(self.root, [self.document_path, *written],
                                message=f"acsprov: PROV exports of run {self.run.run_id}",
                                documents=[self.document_path])
        self._export_seconds += time.perf_counter() - start
        return written

    def activity_seconds(self) -> dict[str, float]:
        """Seconds spent in the run's finished activities, summed by action."""
        spent: dict[str, float] = {}
        for record in self.run.activities:
            if record.ended is not None:
                seconds = (record.ended - record.started).total_seconds()
                spent[record.action] = spent.get(record.action, 0.0) + seconds
        return spent

    @property
    def timing(self) -> dict[str, float]:
        """Seconds spent in actions and in recording them (hashing, PROV, DataLad)."""
        overhead = self._overhead + self._hash.seconds
        return {
            "action_seconds": self._action,
            "hash_seconds": self._hash.seconds,
            "record_seconds": self._overhead,
            "document_seconds": self._doc_seconds,
            "commit_seconds": self._commit_seconds,
            "export_seconds": self._export_seconds,
            "background_commits": self.background,
            "overhead_ratio": overhead / self._action if self._action else float("nan"),
        }

    def write_document(self) -> Path:
        """Write the run's PROV document (PROV-JSON) atomically; return its path."""
        from ._prov import build_document, serialize

        if not self.persist:
            return self.document_path
        started = time.perf_counter()
        text = serialize(build_document(self.run), "json")
        with atomic_path(self.document_path) as tmp:
            tmp.write_text(text + "\n")
        self._document_sha = sha256sum(self.document_path)
        self._doc_seconds += time.perf_counter() - started
        return self.document_path

    def _commit(self, handle: Activity) -> None:
        record = handle.record
        cwd = self.root / record.cwd if record.cwd and self._inside(self.root / record.cwd) \
            else self.root
        if handle.command_cwd is not None:
            cwd = Path(os.path.abspath(handle.command_cwd))
        outputs = [p for p in handle._outputs if p.exists()] + [self.document_path]
        arguments = dict(
            command=record.command or f"# {record.action} (not re-runnable)",
            cwd=cwd,
            inputs=list(handle._inputs),
            outputs=outputs,
            message=f"{record.action}: {record.label}"[:72],
            extra={
                "run": self.run.run_id,
                "activity": record.id,
                "prov": self.relpath(self.document_path),
                "prov_sha256": self._document_sha,
                "status": record.status,
            },
        )
        pending = _datalad.freeze_action(self.root, **arguments)
        if self._committer is None:
            self._save(pending)
        else:
            self._enqueue(lambda: self._save(pending))
            assert self._pending is not None
            for path in outputs:
                self._holders[Path(os.path.abspath(path))] = self._pending

    def _enqueue(self, job: Callable[[], object]) -> None:
        """Queue `job` after the commits already queued; it runs only if they succeeded,
        so waiting for the last one waits for all and raises the first error."""
        assert self._committer is not None
        previous = self._pending

        def chained() -> None:
            if previous is not None:
                previous.result()
            job()

        self._pending = self._committer.submit(chained)

    def _save(self, pending: _datalad.PendingCommit) -> None:
        start = time.perf_counter()
        pending.commit()
        self._commit_seconds += time.perf_counter() - start
