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
    "dataset_root",
    "documents",
    "history_before",
    "lineage",
    "merged_records",
    "render_tree",
    "rerun_source",
    "verify",
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
    from ..headers import REFERENCE_KEYWORDS

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

    Checks that each document is the one DataLad committed (its sha256 is in the run
    record of the last commit that touched it), and that every file whose latest
    recorded version is in a document still has that content.

    Raises
    ------
    ProvenanceMismatchError
        Naming the first file or document that does not match.
    """
    root = Path(os.path.abspath(root))
    checked: list[str] = []
    docs = documents(root)
    if not docs:
        raise BadInputError(f"{root}: no PROV documents in prov/")
    latest: dict[str, str] = {}
    for path in docs:
        _check_committed_sha(root, path)
        checked.append(path.relative_to(root).as_posix())
        doc = _load(path)
        entities = doc.get("entity") or {}
        order = {a: (v.get("prov:endTime") or "") for a, v in (doc.get("activity") or {}).items()}
        generations = sorted(_relations(doc, "wasGeneratedBy"),
                             key=lambda g: order.get(g.get("prov:activity"), ""))
        for gen in generations:
            ent = entities.get(gen.get("prov:entity"), {})
            rel = ent.get("acsprov:path")
            if rel and not rel.startswith(("/", "jref$")):
                latest[rel] = ent.get("acsprov:sha256", "")
    for rel, sha in sorted(latest.items()):
        path = root / rel
        if not path.exists() and not path.is_symlink():
            continue  # intermediates calacs deletes, runs started afresh
        if sha256sum(path) != sha:
            raise ProvenanceMismatchError(f"{rel}: content differs from its provenance record")
        checked.append(rel)
    return checked


def _check_committed_sha(root: Path, document: Path) -> None:
    """The document must hash to what the last commit's run record says it hashed to."""
    rel = document.relative_to(root).as_posix()
    log = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%B", "--", rel],
                         capture_output=True, text=True, check=False)
    if log.returncode != 0 or "=== Do not change lines below ===" not in log.stdout:
        return  # not a DataLad dataset: only file contents can be checked
    record = json.loads(log.stdout.split("=== Do not change lines below ===")[1]
                        .split("^^^ Do not change lines above ^^^")[0])
    expected = (record.get("acsprov") or {}).get("prov_sha256")
    if expected and sha256sum(document) != expected:
        raise ProvenanceMismatchError(f"{rel}: the PROV document was edited after it was recorded")


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
