"""A lineage page people can read: ``prov/lineage.html`` of a work directory.

The PROV graph (``prov graph``) holds everything and is for machines.  This page
shows, for each product of the run directories (``example1/``, ``example2/``...),
the chain that made it, left to right: the archive files it comes from (marked when
they are simulated), each action in the order it ran with the files it made, the
header edits (keyword, before -> after), the reference files read (those the user
supplied marked apart from CRDS's) and the calibration engine.  Products are grouped
by run directory and linked from a table of contents; a legend explains the colours.

The page is rendered with Jinja2 (autoescaped) from the PROV-JSON documents alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fitsutil import atomic_path
from ..keywords import REFERENCE_KEYWORDS
from .query import documents, merged_records

__all__ = ["Chain", "Stage", "lineage_chains", "product_chain", "render_lineage_page", "template",
           "write_lineage_page"]

#: Calibrated products shown on the page.
PRODUCT_SUFFIXES = ("_flt.fits", "_flc.fits", "_crj.fits", "_crc.fits")
#: Roles under which an action uses a file as its data (not as a reference file).
_DATA_ROLES = {"raw", "asn", "archive", "calibrated", "raw header", "input", "run"}


@dataclass
class FileNode:
    """One version of a file in a chain."""

    path: str
    sha256: str
    deleted: bool = False
    simulated: bool = False


@dataclass
class Reference:
    """A reference file an action read."""

    keyword: str
    path: str
    sha256: str
    user_supplied: bool


@dataclass
class Stage:
    """One action of a product's chain, with what it made and how."""

    kind: str
    label: str
    status: str
    started: str
    outputs: list[FileNode] = field(default_factory=list)
    edits: list[dict[str, str]] = field(default_factory=list)
    """``file``, ``keyword``, ``before``, ``after`` of each header edit."""
    references: list[Reference] = field(default_factory=list)
    engine: str = ""
    details: list[str] = field(default_factory=list)


@dataclass
class Chain:
    """The lineage of one product: its archive files, then each action, oldest first."""

    product: str
    rundir: str
    archive: list[FileNode]
    stages: list[Stage]

    @property
    def simulated(self) -> bool:
        return any(f.simulated for f in self.archive)


def _type(record: dict[str, Any]) -> str:
    value = record.get("prov:type") or {}
    return str(value.get("$", "") if isinstance(value, dict) else value).split(":")[-1]


def _json(value: Any, default: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else default
    except ValueError:
        return default


class _Index:
    """The merged PROV records of a work directory, indexed for walking back."""

    def __init__(self, merged: dict[str, Any]) -> None:
        self.entities: dict[str, dict[str, Any]] = merged.get("entity") or {}
        self.activities: dict[str, dict[str, Any]] = merged.get("activity") or {}
        self.agents: dict[str, dict[str, Any]] = merged.get("agent") or {}
        self.generated_by: dict[str, str] = {}
        self.generated: dict[str, list[str]] = {}
        def ended(act: str | None) -> str:
            return str(self.activities.get(act or "", {}).get("prov:endTime", ""))

        for g in (merged.get("wasGeneratedBy") or {}).values():
            entity, act = g.get("prov:entity"), g.get("prov:activity")
            if ended(act) >= ended(self.generated_by.get(entity)):  # the latest run's maker
                self.generated_by[entity] = act
            self.generated.setdefault(act, []).append(entity)
        self.used: dict[str, list[tuple[str, str]]] = {}
        for u in (merged.get("used") or {}).values():
            self.used.setdefault(u.get("prov:activity"), []).append(
                (u.get("prov:entity"), str(u.get("prov:role", ""))))
        self.agents_of: dict[str, list[str]] = {}
        for a in (merged.get("wasAssociatedWith") or {}).values():
            self.agents_of.setdefault(a.get("prov:activity"), []).append(a.get("prov:agent"))

    def latest(self, path: str) -> str | None:
        """The entity id of the last recorded version of `path` that an action made."""
        best, when = None, ""
        for eid, ent in self.entities.items():
            act = self.generated_by.get(eid)
            if ent.get("acsprov:path") == path and act in self.activities:
                end = str(self.activities[act].get("prov:endTime", ""))
                if end >= when:
                    best, when = eid, end
        return best

    def is_reference(self, eid: str, role: str) -> bool:
        ent = self.entities.get(eid, {})
        return _type(ent) == "ReferenceFile" or (
            role not in _DATA_ROLES and role.upper() in REFERENCE_KEYWORDS)

    def node(self, eid: str) -> FileNode:
        ent = self.entities.get(eid, {})
        return FileNode(str(ent.get("acsprov:path", eid)), str(ent.get("acsprov:sha256", "")),
                        deleted=str(ent.get("acsprov:deleted", "")) == "True",
                        simulated=ent.get("acsprov:source") == "simulate")


def product_chain(index: _Index, product_id: str) -> Chain:
    """Walk back from one product to the archive files: the actions and files between."""
    chain_entities: set[str] = set()
    chain_activities: set[str] = set()
    todo = [product_id]
    while todo:
        eid = todo.pop()
        if eid in chain_entities:
            continue
        chain_entities.add(eid)
        act = index.generated_by.get(eid)
        if act is None or act not in index.activities:
            continue
        chain_activities.add(act)
        for used, role in index.used.get(act, []):
            if used in index.entities and _type(index.entities[used]) != "Run" \
                    and not index.is_reference(used, role):
                todo.append(used)
    ordered = sorted(chain_activities,
                     key=lambda a: str(index.activities[a].get("prov:startTime", "")))
    archive: list[FileNode] = []
    stages: list[Stage] = []
    for act_id in ordered:
        act = index.activities[act_id]
        outputs = [index.node(e) for e in index.generated.get(act_id, [])
                   if e in chain_entities]
        if _type(act) == "obtain":
            archive += outputs
            continue
        stages.append(_stage(index, act_id, act, outputs, {n.path for n in outputs}))
    ent = index.entities[product_id]
    path = str(ent.get("acsprov:path", ""))
    return Chain(product=path, rundir=path.split("/")[0] if "/" in path else ".",
                 archive=sorted(archive, key=lambda f: f.path), stages=stages)


def _stage(index: _Index, act_id: str, act: dict[str, Any], outputs: list[FileNode],
           paths: set[str]) -> Stage:
    stage = Stage(kind=_type(act), label=str(act.get("prov:label", _type(act))),
                  status=str(act.get("acsprov:status", "")),
                  started=str(act.get("prov:startTime", ""))[:19].replace("T", " "),
                  outputs=sorted(outputs, key=lambda f: (f.deleted, f.path)))
    for change in _json(act.get("acsprov:header_changes"), []):
        if paths and change.get("file") not in paths:
            continue
        for c in change.get("changes", []):
            stage.edits.append({"file": Path(str(change.get("file", ""))).name,
                                "keyword": str(c.get("keyword")),
                                "before": str(c.get("before")), "after": str(c.get("after"))})
        if not change.get("changes"):
            stage.details.append(f"{Path(str(change.get('file', ''))).name}: no value changed")
    for name, changes in _json(act.get("acsprov:reference_changes"), {}).items():
        for keyword, value in (changes or {}).items():
            pair = (value.get("before"), value.get("after")) if isinstance(value, dict) \
                else tuple(value) if isinstance(value, list) and len(value) == 2 else None
            if pair:
                stage.edits.append({"file": Path(name).name, "keyword": keyword,
                                    "before": str(pair[0]), "after": str(pair[1])})
    if act.get("acsprov:crds_context"):
        stage.details.append(f"CRDS context {act['acsprov:crds_context']}")
    seen = set()
    for eid, role in index.used.get(act_id, []):
        if eid in seen or eid not in index.entities or not index.is_reference(eid, role):
            continue
        seen.add(eid)
        ent = index.entities[eid]
        path = str(ent.get("acsprov:path", ""))
        stage.references.append(Reference(
            keyword=str(ent.get("acsprov:keyword") or role.upper()), path=path,
            sha256=str(ent.get("acsprov:sha256", "")),
            user_supplied=not path.startswith("jref$")))
    stage.references.sort(key=lambda r: (not r.user_supplied, r.keyword))
    engines = [index.agents.get(a, {}) for a in index.agents_of.get(act_id, [])]
    engines = [a for a in engines if a.get("acsprov:version")]
    if engines:
        stage.engine = "; ".join(str(a.get("acsprov:version")) for a in engines)
    elif act.get("acsprov:software"):
        stage.engine = str(act["acsprov:software"])
    return stage


def _products(root: Path, index: _Index) -> list[str]:
    """Products in the run directories that have a recorded maker, sorted."""
    found = set()
    for ent in index.entities.values():
        path = str(ent.get("acsprov:path", ""))
        if path.endswith(PRODUCT_SUFFIXES) and not path.startswith(("cal_fits/", "jref$")) \
                and (root / path).exists():
            found.add(path)
    return sorted(found)


def lineage_chains(root: Path) -> list[Chain]:
    """The chain of every product of the work directory `root`."""
    index = _Index(merged_records(root))
    chains = []
    for path in _products(root, index):
        eid = index.latest(path)
        if eid is not None:
            chains.append(product_chain(index, eid))
    return chains


def template(name: str) -> Any:
    """A Jinja2 template shipped in ``acsprov/templates``, autoescaped."""
    from jinja2 import Environment, PackageLoader

    env = Environment(loader=PackageLoader("acsprov", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)


def render_lineage_page(root: Path, *, base: Path | None = None) -> str:
    """The lineage page of work directory `root`; links are relative to `base`
    (default ``root/prov``, where the page is written)."""
    root = Path(os.path.abspath(root))
    base = Path(os.path.abspath(base or root / "prov"))
    chains = lineage_chains(root)
    groups: dict[str, list[dict[str, Any]]] = {}
    for chain in chains:
        groups.setdefault(chain.rundir, []).append({
            "chain": chain,
            "anchor": "p-" + "".join(ch if ch.isalnum() else "-" for ch in chain.product),
            "link": Path(os.path.relpath(root / chain.product, base)).as_posix(),
        })
    return template("lineage.html.j2").render(
        name=root.name, groups=sorted(groups.items()),
        simulated=any(c.simulated for c in chains),
        documents=[Path(os.path.relpath(d, base)).as_posix() for d in documents(root)])


def write_lineage_page(root: Path, out: Path | None = None) -> Path:
    """Write the lineage page (default ``root/prov/lineage.html``) atomically."""
    out = Path(out) if out is not None else Path(root) / "prov" / "lineage.html"
    text = render_lineage_page(root, base=out.parent)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
