"""Reading a run's PROV documents back: lineage trees and verification.

Works on the PROV-JSON documents in ``<dataset>/prov/`` as plain JSON, so that a
document can be inspected (and its tampering detected) without trusting the code
that wrote it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AcsprovError, BadInputError
from ..fitsutil import sha256sum

__all__ = [
    "Lineage",
    "ProvenanceMismatchError",
    "commit_record",
    "confined",
    "dataset_root",
    "documents",
    "external",
    "history_before",
    "lineage",
    "merged_records",
    "recorded_documents",
    "recorded_state",
    "render_tree",
    "rerun_source",
    "verify",
    "verify_documents",
]


class ProvenanceMismatchError(AcsprovError):
    """A file or document does not match its recorded provenance."""

    exit_code = 6


def dataset_root(path: Path) -> Path:
    """The nearest directory at or above `path` that holds a ``prov/`` directory."""
    path = Path(os.path.abspath(path))
    for candidate in [path, *path.parents]:
        if (candidate / "prov").is_dir():
            return candidate
    raise BadInputError(f"{path}: not inside an acsprov work directory (no prov/ above it)")


def documents(root: Path) -> list[Path]:
    """The PROV-JSON documents of a dataset, oldest run first."""
    return sorted((root / "prov").glob("*.json"))


@dataclass
class Lineage:
    """A node of a lineage tree: a file version and the activity that made it."""

    entity: dict[str, Any]
    activity: dict[str, Any] | None = None
    activity_id: str | None = None
    inputs: list[Lineage] = field(default_factory=list)


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path}: not a readable PROV-JSON document ({err})") from err


def _relations(doc: dict[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    yield from (doc.get(kind) or {}).values()


def merged_records(root: Path) -> dict[str, Any]:
    """All PROV-JSON documents of a work directory as one (identifiers are global)."""
    merged: dict[str, Any] = {}
    for number, path in enumerate(documents(root)):
        for kind, records in _load(path).items():
            if not isinstance(records, dict):
                continue
            if kind in ("entity", "activity", "agent", "prefix"):
                merged.setdefault(kind, {}).update(records)  # global identifiers
            else:  # relations have per-document blank-node ids: keep them apart
                merged.setdefault(kind, {}).update(
                    {f"{number}/{key}": value for key, value in records.items()})
    return merged


def lineage(product: Path) -> Lineage:
    """The chain of activities and files that made `product` (its current content).

    All PROV documents of the work directory are read together: identifiers name
    file versions by content and path, so a file made in one run and used in a later
    one (a standalone ``acsprov updatewcs`` after a recipe, say) links up.
    """
    root = dataset_root(product)
    rel = Path(os.path.abspath(product)).relative_to(root).as_posix()
    current = sha256sum(product) if product.exists() else None
    merged = merged_records(root)
    entities = merged.get("entity") or {}
    generated = {g.get("prov:entity") for g in _relations(merged, "wasGeneratedBy")}
    matches = [eid for eid, e in entities.items()
               if e.get("acsprov:path") == rel
               and (current is None or e.get("acsprov:sha256") == current)]
    if not matches:
        raise ProvenanceMismatchError(
            f"{rel}: no provenance record of this file's current content")
    best = next((m for m in matches if m in generated), matches[-1])
    return _tree(merged, best, frozenset())


def _kind(entity: dict[str, Any]) -> str:
    value = entity.get("prov:type") or {}
    return str(value.get("$", "") if isinstance(value, dict) else value)


def _tree(doc: dict[str, Any], entity_id: str, seen: frozenset[str],
          parent_activity: str | None = None) -> Lineage:
    """The lineage of one entity: what it was derived from, and the reference files used.

    Derivations (``wasDerivedFrom``) give the exact chain of a file (a raw file
    through its header edits, a product through calacs's temporaries); reference
    files the generating activity used are shown as leaves (once: not again below a
    file the same activity made).
    """
    entities = doc.get("entity") or {}
    node = Lineage(entity=entities[entity_id])
    if entity_id in seen:
        return node
    seen = seen | {entity_id}
    generation = next((g for g in _relations(doc, "wasGeneratedBy")
                       if g.get("prov:entity") == entity_id), None)
    if generation is None:
        return node
    activity_id = generation["prov:activity"]
    node.activity_id = activity_id
    node.activity = (doc.get("activity") or {}).get(activity_id)
    sources = [d["prov:usedEntity"] for d in _relations(doc, "wasDerivedFrom")
               if d.get("prov:generatedEntity") == entity_id]
    used = [u.get("prov:entity") for u in _relations(doc, "used")
            if u.get("prov:activity") == activity_id]
    used = [u for u in used if u in entities and _kind(entities[u]) != "acsprov:Run"]
    if not sources:
        sources = [u for u in used if _kind(entities[u]) != "acsprov:ReferenceFile"]
    for source in dict.fromkeys(sources):
        if source in entities:
            node.inputs.append(_tree(doc, source, seen, activity_id))
    if activity_id == parent_activity:
        return node
    for ref in dict.fromkeys(u for u in used if _kind(entities[u]) == "acsprov:ReferenceFile"
                             and u not in sources):
        node.inputs.append(Lineage(entity=entities[ref]))
    # a reference file of the run's own (mybias.fits, mydark.fits), with its lineage
    from ..keywords import REFERENCE_KEYWORDS

    local_refs = [u.get("prov:entity") for u in _relations(doc, "used")
                  if u.get("prov:activity") == activity_id
                  and str(u.get("prov:role", "")).upper() in REFERENCE_KEYWORDS]
    for ref in dict.fromkeys(local_refs):
        if ref in entities and ref not in sources and \
                _kind(entities[ref]) != "acsprov:ReferenceFile":
            node.inputs.append(_tree(doc, ref, seen))
    return node


def render_tree(node: Lineage) -> str:
    """A terminal rendering of a lineage tree."""
    lines: list[str] = []

    def label(n: Lineage) -> str:
        e = n.entity
        sha = str(e.get("acsprov:sha256", ""))[:12]
        text = f"{e.get('acsprov:path', '?')}  sha256:{sha}"
        if _kind(e) == "acsprov:ReferenceFile":
            text += f"  ({e.get('acsprov:keyword', 'reference')})"
            if e.get("acsprov:crds_context"):
                text += (f"\n    crds {e['acsprov:crds_context']} "
                         f"{e.get('acsprov:crds_server', '')}  "
                         f"sha1:{e.get('acsprov:crds_sha1', '')}")
        elif e.get("acsprov:keyword"):  # a reference file inside the work directory
            text += f"  ({e['acsprov:keyword']}, user-supplied reference file)"
        elif e.get("acsprov:deleted") == "True":
            text += "  (temporary, deleted)"
        if n.activity is not None:
            act = n.activity
            kind = act.get("prov:label", "?")
            status = act.get("acsprov:status", "?")
            when = str(act.get("prov:endTime", ""))[:19]
            text += f"\n    <- {kind} [{status}] {when}"
        return text

    def walk(n: Lineage, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        first, *rest = label(n).split("\n")
        lines.append(prefix + branch + first)
        child_prefix = prefix + ("" if top else ("    " if last else "│   "))
        for extra in rest:
            lines.append(child_prefix + extra)
        for i, child in enumerate(n.inputs):
            walk(child, child_prefix, i == len(n.inputs) - 1, False)

    walk(node, "", True, True)
    return "\n".join(lines)


def verify(root: Path) -> list[str]:
    """Check a dataset's files and PROV documents; return what was checked.

    - the chain of documents (:func:`verify_documents`): each is the one acsprov
      committed, none is missing;
    - every file a document records as made (archive files, working copies, products,
      trailers) still has the content of its *latest* record; a missing one is a
      failure, unless calacs deleted it (a temporary) or a later run started its
      directory afresh;
    - every reference file the runs used (``jref$``, the CRDS cache, or another
      directory) still has its recorded content.

    Raises
    ------
    ProvenanceMismatchError
        Naming the first file or document that does not match.
    """
    root = Path(os.path.abspath(root))
    checked = verify_documents(root)
    latest, references = recorded_state([_load(path) for path in documents(root)])
    for rel, (sha, deleted) in sorted(latest.items()):
        path = confined(root, rel)
        if not os.path.lexists(path):
            if deleted:
                continue  # calacs's temporaries, recorded with their checksums
            raise ProvenanceMismatchError(f"{rel}: recorded but missing (deleted after the "
                                          "run; `git checkout` or re-run to restore it)")
        if not os.path.exists(path):
            raise ProvenanceMismatchError(f"{rel}: content not present (`datalad get` it)")
        if sha256sum(path) != sha:
            raise ProvenanceMismatchError(f"{rel}: content differs from its provenance record")
        checked.append(rel)
    for (rel, sha), where in sorted(references.items()):
        if where and not os.path.isabs(where):  # an alias inside the dataset (crds/)
            where = os.path.join(root, where)
        if not where or not os.path.isfile(where):
            raise ProvenanceMismatchError(f"{rel}: reference file the run used is missing "
                                          f"({where or 'unknown directory'})")
        if sha256sum(where) != sha:
            raise ProvenanceMismatchError(f"{rel}: reference file differs from the one the "
                                          "run used")
        checked.append(rel)
    return checked


def recorded_state(docs: list[dict[str, Any]]
                   ) -> tuple[dict[str, tuple[str, bool]], dict[tuple[str, str], str]]:
    """What PROV documents (oldest run first) say the files should be now.

    Returns
    -------
    latest : dict
        Dataset-relative path -> (sha256 of its latest recorded version, whether
        calacs deleted it), for every file a run made and no later run cleared.
    references : dict
        (recorded external path, sha256) -> where that file is now (``""`` if the
        path cannot be resolved), for every reference file a run used.
    """
    latest: dict[str, tuple[str, bool]] = {}
    references: dict[tuple[str, str], str] = {}
    for doc in docs:
        entities = doc.get("entity") or {}
        run = next((e for e in entities.values() if _kind(e) == "acsprov:Run"), {})
        aliases = _json_attribute(run, "acsprov:aliases", {})
        for directory in _json_attribute(run, "acsprov:cleared", []):
            prefix = str(directory).rstrip("/") + "/"
            for rel in [r for r in latest if r.startswith(prefix)]:
                del latest[rel]
        order = {a: (v.get("prov:endTime") or "") for a, v in (doc.get("activity") or {}).items()}
        generations = sorted(_relations(doc, "wasGeneratedBy"),
                             key=lambda g: order.get(g.get("prov:activity"), ""))
        for gen in generations:
            ent = entities.get(gen.get("prov:entity"), {})
            rel = ent.get("acsprov:path")
            if rel and not external(rel):
                latest[rel] = (ent.get("acsprov:sha256", ""),
                               str(ent.get("acsprov:deleted")) == "True")
        for use in _relations(doc, "used"):
            ent = entities.get(use.get("prov:entity"), {})
            rel = str(ent.get("acsprov:path", ""))
            if rel and external(rel):
                references[(rel, str(ent.get("acsprov:sha256", "")))] = \
                    _resolve_external(rel, aliases)
    return latest, references


def verify_documents(root: Path) -> list[str]:
    """Check the chain of PROV documents of a dataset; return their paths.

    In a DataLad dataset every document must hash to what the newest acsprov record
    naming it says (the run record of an action's commit, or the record line of the
    commit that saved an interrupted run's document), whatever commits came after:
    a document edited and then saved by hand does not pass.  A document acsprov
    recorded must not be missing, and one it never recorded is refused.

    Raises
    ------
    ProvenanceMismatchError
        Naming the first document that does not match.
    """
    root = Path(os.path.abspath(root))
    docs = documents(root)
    if not docs:
        raise BadInputError(f"{root}: no PROV documents in prov/")
    chain = recorded_documents(root)
    checked = []
    if chain is not None:
        for rel in sorted(chain):
            if not os.path.lexists(confined(root, rel)):
                raise ProvenanceMismatchError(f"{rel}: a PROV document acsprov recorded "
                                              "is missing")
    for path in docs:
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or not path.is_file():
            raise ProvenanceMismatchError(f"{rel}: not a regular file")
        if chain is not None:
            if rel not in chain:
                raise ProvenanceMismatchError(f"{rel}: a PROV document acsprov never recorded")
            if sha256sum(path) != chain[rel]:
                raise ProvenanceMismatchError(
                    f"{rel}: the PROV document was edited after it was recorded")
        checked.append(rel)
    return checked


RECORD_LINE = "acsprov-record: "
"""Start of the line that carries the record of a commit without a run record."""


def recorded_documents(root: Path) -> dict[str, str] | None:
    """PROV document path -> sha256 in its newest acsprov record, from the dataset's
    whole history; None if `root` is not a git repository."""
    if not (Path(root) / ".git").exists():
        return None
    log = subprocess.run(["git", "-C", str(root), "log", "--format=%x00%H%x01%B"],
                         capture_output=True, text=True, check=False)
    if log.returncode != 0:
        return None
    chain: dict[str, str] = {}
    for entry in log.stdout.split("\0"):
        commit, _, message = entry.partition("\x01")
        record = commit_record(message)
        rel, sha = record.get("prov"), record.get("prov_sha256")
        if isinstance(rel, str) and isinstance(sha, str) and rel not in chain:
            chain[rel] = sha
        elif not record and _is_step_rerun(message):
            for rel, sha in _documents_added(root, commit.strip()).items():
                chain.setdefault(rel, sha)
    return chain


def _is_step_rerun(message: str) -> bool:
    """True for the commit of ``datalad rerun`` re-executing ``acsprov step``: DataLad
    copies the run record without acsprov's own key, so the PROV document the step
    wrote is recorded by that commit's content instead."""
    if "=== Do not change lines below ===" not in message:
        return False
    try:
        block = message.split("=== Do not change lines below ===")[1]
        record = json.loads(block.split("^^^ Do not change lines above ^^^")[0])
    except (ValueError, IndexError):
        return False
    return str(record.get("cmd", "")).startswith("acsprov step ")


def _documents_added(root: Path, commit: str) -> dict[str, str]:
    """PROV documents (``prov/*.json``) that `commit` added, with their sha256 there."""
    import hashlib

    names = subprocess.run(
        ["git", "-C", str(root), "diff-tree", "--no-commit-id", "--name-only", "-r",
         "--diff-filter=A", commit, "--", "prov/"],
        capture_output=True, text=True, check=False).stdout.split()
    out = {}
    for rel in names:
        if not rel.endswith(".json"):
            continue
        blob = subprocess.run(["git", "-C", str(root), "cat-file", "blob", f"{commit}:{rel}"],
                              capture_output=True, check=False)
        if blob.returncode == 0:
            out[rel] = hashlib.sha256(blob.stdout).hexdigest()
    return out


def commit_record(message: str) -> dict[str, Any]:
    """The ``acsprov`` record of a commit message (run record, or record line)."""
    try:
        if "=== Do not change lines below ===" in message:
            block = message.split("=== Do not change lines below ===")[1]
            record = json.loads(block.split("^^^ Do not change lines above ^^^")[0])
            return dict(record.get("acsprov") or {})
        for line in message.splitlines():
            if line.startswith(RECORD_LINE):
                return dict(json.loads(line[len(RECORD_LINE):]))
    except (ValueError, TypeError, AttributeError):
        pass
    return {}


def _json_attribute(entity: dict[str, Any], key: str, default: Any) -> Any:
    value = entity.get(key)
    if isinstance(value, dict):
        value = value.get("$")
    try:
        parsed = json.loads(value) if isinstance(value, str) else default
    except ValueError:
        return default
    return parsed if isinstance(parsed, type(default)) else default


def external(rel: str) -> bool:
    """A recorded path outside the dataset: ``jref$...`` or absolute."""
    return rel.startswith("/") or "$" in rel.split("/", 1)[0]


def _resolve_external(rel: str, aliases: dict[str, str]) -> str:
    """Where a recorded external path is now: absolute, or via the run's aliases."""
    if rel.startswith("/"):
        return rel
    prefix, _, rest = rel.partition("$")
    directory = aliases.get(f"{prefix}$") or os.environ.get(prefix, "")
    if not directory or not rest or ".." in Path(rest).parts:
        return ""
    return os.path.join(directory, rest)


def confined(root: Path, rel: str) -> Path:
    """`rel` (a path recorded relative to `root`) inside `root`, or UnsafePathError.

    Paths in a received PROV document are data, not instructions: absolute paths,
    ``..`` components and links leading out of `root` are refused.
    """
    from ..errors import UnsafePathError

    text = str(rel)
    parts = Path(text).parts
    if not text or text.startswith("/") or ".." in parts or "\0" in text:
        raise UnsafePathError(f"{text!r}: a recorded path outside the work directory")
    path = Path(root) / text
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafePathError(f"{text!r}: leads out of the work directory through a link")
    return path


def history_before(root: Path, command: str) -> tuple[str, ...]:
    """Stamp history of the recorded activity that ran `command` (the latest such).

    ``acsprov step`` (what ``datalad rerun`` executes) uses it so that a re-made
    product's header names the same actions as the original's.
    """
    return rerun_source(root, command)[0]


def rerun_source(root: Path, command: str) -> tuple[tuple[str, ...], str | None]:
    """The stamp history before the recorded activity that ran `command` (the latest
    such), and that activity's identifier (None if no activity ran it)."""
    for path in reversed(documents(root)):
        activities = sorted((_load(path).get("activity") or {}).items(),
                            key=lambda item: str(item[1].get("prov:startTime", "")))
        names = []
        for key, activity in activities:
            kind = str((activity.get("prov:type") or {}).get("$", "")).split(":")[-1]
            if activity.get("acsprov:command") == command:
                return tuple(names), key.split(":", 1)[-1]
            names.append(f"{kind} ({key.split(':', 1)[-1]})")
    return (), None
