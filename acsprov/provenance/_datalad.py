"""DataLad operations of the recorder (the only module importing `datalad`).

A work directory ``work/<dataset>/`` is a DataLad dataset.  FITS files are annexed,
content-addressed with BLAKE3 (a cryptographic hash several times faster than SHA-256;
the PROV documents hold every file's SHA-256 as well); text files (trailers, PROV
documents, JSON) go to git.  Annexed files are added *unlocked* (``annex.addunlocked``):
the work tree keeps a regular file and the annex a copy, so adding never replaces a
path another action may be reading, and a write in place can never reach the annex.

Each recorded action is one commit whose message carries the run record (command,
inputs, outputs, working directory) in the format of ``datalad run --inject``: the
action has already run in-process, and ``datalad rerun`` executes the command again.
The commit is written from hard links of the outputs taken when the action ended
(:class:`PendingCommit`), with git and git-annex plumbing, so that the recorder can
make it in a background thread while the next action runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PendingCommit",
    "commit_removal",
    "ensure_dataset",
    "freeze_action",
    "freeze_files",
    "is_dataset",
    "save_interrupted",
    "save_paths",
    "unlock",
]

log = logging.getLogger(__name__)
os.environ.setdefault("DATALAD_LOG_LEVEL", "WARNING")
logging.getLogger("datalad").setLevel(logging.WARNING)

ANNEX_BACKEND = "BLAKE3_256E"
STAGING = Path(".git") / "acsprov-staging"
"""Where :func:`freeze_action` links outputs until their commit is made."""

GITATTRIBUTES = f"""\
* annex.backend={ANNEX_BACKEND}
* annex.largefiles=((mimeencoding=binary)and(largerthan=0))
*.fits annex.largefiles=anything
*.fits.gz annex.largefiles=anything
**/.git* annex.largefiles=nothing
"""


def _ensure_git_annex() -> None:
    """Put the git-annex installed with acsprov's Python packages on PATH."""
    if shutil.which("git-annex"):
        return
    bindir = Path(sys.executable).parent
    if (bindir / "git-annex").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        return
    from ..errors import AcsprovError

    raise AcsprovError("git-annex is not installed: `pip install git-annex` (it is in "
                       "requirements.lock), or run acsprov with --no-datalad")


def is_dataset(root: Path) -> bool:
    """True if `root` is the top of a DataLad dataset."""
    return (root / ".datalad" / "config").is_file()


def ensure_dataset(root: Path) -> None:
    """Make `root` a DataLad dataset (annexing FITS files), if it is not one yet."""
    _ensure_git_annex()
    root.mkdir(parents=True, exist_ok=True)
    if is_dataset(root):  # a later run: no need to load DataLad (a second of imports)
        _configure(root)
        _exclude_lock(root)
        return
    import datalad.api as dl

    dl.create(path=str(root), force=True, result_renderer="disabled",
              description="acsprov work directory")
    _ensure_identity(root)
    _configure(root)
    _exclude_lock(root)
    (root / ".gitattributes").write_text(GITATTRIBUTES)
    dl.save(dataset=str(root), path=[str(root / ".gitattributes")],
            message="acsprov: annex FITS files (BLAKE3 keys), keep text in git",
            result_renderer="disabled")


def _configure(root: Path) -> None:
    """Add annexed files unlocked (see the module docstring), never hard-linked; drop
    the frozen outputs of commits a killed process left unmade."""
    for key, value in (("annex.addunlocked", "true"), ("annex.thin", "false")):
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)
    shutil.rmtree(root / STAGING, ignore_errors=True)
def _exclude_lock(root: Path) -> None:
    """Keep the work directory's lock file (:mod:`acsprov.lock`) out of git."""
    from ..lock import LOCK_NAME

    exclude = root / ".git" / "info" / "exclude"
    if not exclude.parent.is_dir() or exclude.parent.is_symlink():
        return
    if exclude.is_symlink():
        exclude.unlink()  # git's own file: never written through a link
    text = exclude.read_text() if exclude.exists() else ""
    if f"/{LOCK_NAME}" not in text.splitlines():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n")
                           + f"/{LOCK_NAME}\n")


def _ensure_identity(root: Path) -> None:
    """Give the dataset a committer identity if git has none configured."""
    for key, value in (("user.name", "acsprov"), ("user.email", "acsprov@localhost")):
        probe = subprocess.run(["git", "-C", str(root), "config", key],
                               capture_output=True, text=True, check=False)
        if not probe.stdout.strip():
            subprocess.run(["git", "-C", str(root), "config", key, value], check=True)


def unlock(root: Path, paths: Iterable[Path]) -> None:
    """Unlock annexed files among `paths`, so that writing them never touches the annex.

    A locked annexed file is a symlink into ``.git/annex/objects``; as root, opening
    it for update would write into the object itself and corrupt it.  Unlocking
    replaces the link by a regular copy; the previous version stays in the annex.
    """
    locked = [p for p in paths if p.is_symlink() and ".git/annex/objects" in os.readlink(p)]
    if not locked:
        return
    import datalad.api as dl

    dl.unlock(dataset=str(root), path=[str(p) for p in locked], result_renderer="disabled")


@dataclass
class PendingCommit:
    """An action's outputs, frozen as they were when it ended, waiting to be committed.

    Each output is hard-linked into ``.git/acsprov-staging/``: acsprov replaces files
    by renaming (a new inode), so the link keeps the content the action left even if
    the next action rewrites the path meanwhile.  :meth:`commit` then writes the
    commit from the links with git and git-annex plumbing, without reading the work
    tree, and so may run in a background thread while the next action works.
    """

    root: Path
    staging: Path
    files: list[tuple[str, Path]]  # (path relative to the root, hard link)
    message: str
    only_if_changed: bool = False
    """Make no commit if the tree does not change (a plain save of unchanged files)."""

    def commit(self) -> str:
        """Annex or hash each frozen file, stage it, and commit; return the sha."""
        try:
            staged = _staged_blobs(self.root, [rel for rel, _ in self.files])
            entries = [f"100644 {blob}\t{rel}"
                       for (rel, _), blob in zip(self.files, self._blobs(staged), strict=True)]
            if entries:
                _git(self.root, "update-index", "--add", "--index-info",
                     stdin="\n".join(entries) + "\n")
            return _commit_index(self.root, self.message, only_if_changed=self.only_if_changed)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _blobs(self, staged: Mapping[str, str]) -> list[str]:
        """The git blob of each frozen file, as :meth:`_blob` makes it, with one git
        process for all the files of a kind rather than one or two per file (a commit
        of the run's reference files holds dozens)."""
        links = [link for _, link in self.files]
        if any("\n" in str(link) or "\0" in str(link) for link in links):
            return [self._blob(link, staged.get(rel)) for rel, link in self.files]
        blobs = [""] * len(links)
        annexed = [i for i, link in enumerate(links) if _annexed(link)]
        plain = sorted(set(range(len(links))) - set(annexed))
        keys = dict(zip(annexed, _git_batch(
            self.root, ["annex", "calckey", "--backend", ANNEX_BACKEND],
            [str(links[i]) for i in annexed], nul=True), strict=True))
        reusable = [i for i, key in keys.items()
                    if staged.get(self.files[i][0]) == _blob_sha(_pointer(key))]
        present = _git_batch(self.root, ["annex", "contentlocation"],
                             [keys[i] for i in reusable], check=False)
        for i, location in zip(reusable, present, strict=True):
            if location:  # the index already points at this content, and the annex has it
                blobs[i] = staged[self.files[i][0]]
        for i, key in keys.items():
            if blobs[i]:
                continue
            link = links[i]
            self._annex_content(link, key)
            pointer = link.with_name(f"{link.name}.pointer")
            pointer.write_text(_pointer(key))
            links[i] = pointer
            plain.append(i)
        shas = _git_batch(self.root, ["hash-object", "-w", "--no-filters", "--stdin-paths"],
                          [str(links[i]) for i in plain])
        for i, sha in zip(plain, shas, strict=True):
            blobs[i] = sha
        return blobs

    def _blob(self, link: Path, staged: str | None = None) -> str:
        """The git blob for a frozen file: an annex pointer, or the file itself.

        `staged` is the blob the index holds for the path: when it is the pointer to
        this very content and the annex has that content (a reference file or an
        archive file committed by an earlier run, unchanged), it is kept as it is,
        without a second copy of the content into the annex.
        """
        if not _annexed(link):
            return _git(self.root, "hash-object", "-w", "--no-filters", str(link))
        key = _git(self.root, "annex", "calckey", "--backend", ANNEX_BACKEND, str(link))
        if staged is not None and staged == _blob_sha(_pointer(key)) \
                and _git(self.root, "annex", "contentlocation", key, check=False):
            return staged
        self._annex_content(link, key)
        return _git(self.root, "hash-object", "-w", "--stdin",
                    stdin=_pointer(key))

    def _annex_content(self, link: Path, key: str) -> None:
        """Put a copy of the frozen file's content into the annex under `key`."""
        content = link.with_name(f"{link.name}.content")
        shutil.copyfile(link, content)  # the annex gets its own copy, never the inode
        # the key was just computed from this very content: no second checksum pass
        _git(self.root, "-c", "annex.verify=false", "annex", "setkey", "--quiet", key,
             str(content))


def _staged_blobs(root: Path, rels: Iterable[str]) -> dict[str, str]:
    """Path (relative to `root`) -> the blob sha the index holds for it, if any."""
    rels = list(rels)
    if not rels:
        return {}
    out = _git(root, "--literal-pathspecs", "ls-files", "-s", "-z", "--", *rels, check=False)
    staged = {}
    for entry in filter(None, out.split("\0")):
        info, _, rel = entry.partition("\t")
        staged[rel] = info.split()[1]
    return staged


def _pointer(key: str) -> str:
    """The content of the git blob of an unlocked annexed file with annex key `key`."""
    return f"/annex/objects/{key}\n"


def _blob_sha(text: str) -> str:
    """The sha git gives a blob of `text` (as ``git hash-object --stdin``)."""
    import hashlib

    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def freeze_action(
    root: Path,
    *,
    command: str,
    cwd: Path,
    inputs: Iterable[Path],
    outputs: Iterable[Path],
    message: str,
    extra: Mapping[str, Any],
) -> PendingCommit:
    """Freeze `outputs` for a commit with a DataLad run record of `command` in `cwd`.

    The record is the one ``datalad run --inject --explicit`` writes: paths relative
    to `cwd`, `cwd` relative to the dataset, the dataset id, exit code 0, and
    ``extra`` under the key ``acsprov``; ``datalad rerun`` executes it again.
    """
    rel = lambda p: os.path.relpath(os.path.abspath(p), cwd)  # noqa: E731
    saved = [Path(os.path.abspath(p)) for p in outputs
             if _inside(p, root) and os.path.isfile(p)]
    record = {
        # datalad rerun formats the command with str.format ({inputs}, {outputs}...):
        # the literal braces of JSON parameters must be doubled to survive that
        "cmd": command.replace("{", "{{").replace("}", "}}"),
        "chain": [],
        "inputs": [rel(p) for p in inputs if _inside(p, root)],
        "extra_inputs": [],
        "outputs": [rel(p) for p in saved],
        "pwd": os.path.relpath(cwd, root),
        "exit": 0,
        "acsprov": dict(extra),
    }
    dsid = _git(root, "config", "-f", ".datalad/config", "datalad.dataset.id", check=False)
    if dsid:
        record["dsid"] = dsid
    text = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
    full = (f"[DATALAD RUNCMD] {message}\n\n=== Do not change lines below ===\n"
            f"{text}\n^^^ Do not change lines above ^^^\n")
    return freeze_files(root, saved, message=full)


def freeze_files(root: Path, paths: Iterable[Path], *, message: str) -> PendingCommit:
    """Freeze `paths` (files inside `root`) for a commit with `message` (hard links,
    see :class:`PendingCommit`); a plain commit unless the message holds a run record."""
    saved = [Path(os.path.abspath(p)) for p in paths]
    staging = root / STAGING / uuid.uuid4().hex
    files = []
    for index, path in enumerate(dict.fromkeys(saved)):
        link = staging / str(index) / path.name
        link.parent.mkdir(parents=True)
        os.link(path, link)
        files.append((path.relative_to(os.path.abspath(root)).as_posix(), link))
    staging.mkdir(parents=True, exist_ok=True)
    return PendingCommit(Path(root), staging, files, message)


def _annexed(path: Path) -> bool:
    """Whether the dataset's ``.gitattributes`` annex `path`: FITS files, and other
    non-empty binary files (a NUL byte near the start, as file's mime encoding)."""
    if path.name.endswith((".fits", ".fits.gz")):
        return True
    with open(path, "rb") as fh:
        head = fh.read(8192)
    return bool(head) and b"\0" in head


def _git(root: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run git in `root`; return its stripped output (raise AcsprovError on failure)."""
    proc = subprocess.run(["git", "-C", str(root), *args], input=stdin,
                          capture_output=True, text=True, check=False)
    if check and proc.returncode:
        from ..errors import AcsprovError

        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise AcsprovError(f"git {args[0]} failed in {root}: "
                           f"{detail[-1] if detail else proc.returncode}")
    return proc.stdout.strip()


def _git_batch(root: Path, args: Sequence[str], items: Sequence[str], *,
               nul: bool = False, check: bool = True) -> list[str]:
    """Run git's batch mode of `args` on `items`; return one output line per item
    (empty for an item git-annex has no answer for).  Raise AcsprovError if a line
    is missing, or, with `check`, if one is empty."""
    if not items:
        return []
    if nul:
        args, stdin = [*args, "--batch", "-z"], "\0".join(items) + "\0"
    else:
        stdin = "\n".join(items) + "\n"
        if args[0] == "annex":
            args = [*args, "--batch"]
    proc = subprocess.run(["git", "-C", str(root), *args], input=stdin,
                          capture_output=True, text=True, check=False)
    lines = proc.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if proc.returncode or len(lines) != len(items) or (check and not all(lines)):
        from ..errors import AcsprovError

        missing = next((item for item, line in zip(items, lines, strict=False)
                        if not line), None)
        detail = (proc.stderr.strip().splitlines() or [f"no answer for {missing}"])[-1]
        raise AcsprovError(f"git {' '.join(args[:2])} failed in {root}: {detail}")
    return lines


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def save_paths(root: Path, paths: Iterable[Path], *, message: str,
               documents: Iterable[Path] = ()) -> None:
    """Commit `paths` (plain save, no run record: derived files, not actions).

    The PROV `documents` among them are named with their sha256 on a record line of
    the message (see :func:`acsprov.provenance.query.verify_documents`).  Files are
    committed with git and git-annex plumbing, as actions are (see
    :class:`PendingCommit`); a directory among `paths` goes through ``datalad save``.
    """
    from ..fitsutil import sha256sum
    from .query import RECORD_LINE

    _ensure_git_annex()
    paths = [Path(p) for p in paths]
    lines = [RECORD_LINE + json.dumps({"prov": Path(os.path.relpath(d, root)).as_posix(),
                                       "prov_sha256": sha256sum(d)}, sort_keys=True)
             for d in documents]
    full = message + ("\n\n" + "\n".join(lines) if lines else "")
    if all(p.is_file() and not p.is_symlink() and _inside(p, root) for p in paths):
        pending = freeze_files(root, paths, message=full)
        pending.only_if_changed = True
        pending.commit()
        return
    import datalad.api as dl

    dl.save(dataset=str(root), path=[str(p) for p in paths], message=full,
            result_renderer="disabled")


def save_interrupted(root: Path) -> bool:
    """Commit the PROV documents a killed run wrote but did not commit; True if any.

    A run killed between writing its document and committing it leaves the document
    changed in the work tree, which ``acsprov prov verify`` would report as edited.
    The next run (holding the work directory's lock) commits it as what it is: the
    record of an interrupted run.
    """
    prov = root / "prov"
    if not prov.is_dir():
        return False
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                             "--untracked-files=all", "--", "prov"],
                            capture_output=True, text=True, check=False)
    if status.returncode != 0 or not status.stdout.strip():
        return False
    changed = [root / line[3:].strip().strip('"') for line in status.stdout.splitlines()]
    documents = [p for p in changed if p.suffix == ".json" and p.is_file()
                 and not p.is_symlink()]
    save_paths(root, [prov], message="acsprov: PROV record of an interrupted run",
               documents=documents)
    return True


def commit_removal(root: Path, path: Path, *, message: str) -> None:
    """Commit the removal of `path` (already gone from the work tree) from the index."""
    rel = os.path.relpath(path, root)
    _git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", rel)
    if _git(root, "diff", "--cached", "--name-only", "--", rel):
        _commit_index(root, message)


def _commit_index(root: Path, message: str, *, only_if_changed: bool = False) -> str:
    """Commit the index as it is, with plumbing: the work tree is neither read nor
    refreshed (it may already hold what the next action wrote).  Returns the sha
    (HEAD's if `only_if_changed` and the index holds HEAD's tree)."""
    tree = _git(root, "write-tree")
    parent = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if only_if_changed and parent and tree == _git(root, "rev-parse", f"{parent}^{{tree}}"):
        return parent
    sha = _git(root, "commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-",
               stdin=message)
    _git(root, "update-ref", "-m", "acsprov: recorded action", "HEAD", sha)
    return sha
