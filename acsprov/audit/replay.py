"""Reproducibility audits: re-run a recorded run from its provenance, or compare with the archive.

``audit_run`` reads a work directory's PROV document, replays its actions in a scratch
directory (the same archive files, checked against their recorded sha256, the same
header edits and parameters, the same reference files from the CRDS cache the run
used, the same engine unless another is asked for) and compares every FITS product
the run made with the one in the work directory (:mod:`acsprov.audit.compare`).

``audit_archive`` compares the ``_flt`` products of a recipe's run with the archive's
own ``_flt`` files obtained beside the raw data: which switches and reference files
differ between the archive's processing and ours, and the pixel statistics.

Both return an :class:`AuditResult`, which :mod:`acsprov.audit.report` renders as HTML
and JSON.  Nothing in the work directory is changed by an audit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AcsprovError, BadInputError
from ..fitsutil import sha256sum
from ..provenance.query import confined
from .compare import VOLATILE_KEYWORDS, ExtensionDiff, ProductDiff, Tolerance, compare_products

__all__ = [
    "ARCHIVE_IGNORE",
    "AuditFailedError",
    "AuditResult",
    "RecordedRun",
    "audit_archive",
    "audit_run",
    "load_run",
    "simulated_products",
]

#: Keywords ignored when comparing with the archive: beside the volatile ones, those
#: that name the software and files rather than describe the calibration.
ARCHIVE_IGNORE: tuple[str, ...] = (*VOLATILE_KEYWORDS, "ORIGIN", "COMMENT", "FILENAME",
                                   "CRDS_CTX", "CRDS_VER", "SIMULATE")


class AuditFailedError(AcsprovError):
    """A product was not reproduced within the tolerances."""

    exit_code = 7


@dataclass
class RecordedRun:
    """A run as its PROV document describes it."""

    document: Path
    root: Path
    name: str
    run_id: str
    activities: list[dict[str, Any]]
    """PROV activities in the order they ran, each with ``id`` and ``action`` added."""
    entities: dict[str, dict[str, Any]]
    generated: dict[str, list[str]]
    """Activity id -> ids of the entities it generated."""
    used: dict[str, list[str]]
    """Activity id -> ids of the entities it used."""

    def products(self) -> dict[str, str]:
        """Dataset-relative path -> sha256 of the last version of every file a step made."""
        latest: dict[str, str] = {}
        for act in self.activities:
            if act["action"] == "obtain":
                continue
            for eid in self.generated.get(act["id"], []):
                ent = self.entities.get(eid, {})
                path = ent.get("acsprov:path", "")
                if path and not path.startswith(("/", "jref$")):
                    latest[path] = ent.get("acsprov:sha256", "")
        return latest

    def references(self, activity_id: str) -> dict[str, str]:
        """``jref$`` path -> recorded sha256 of the reference files an activity used."""
        out = {}
        for eid in self.used.get(activity_id, []):
            ent = self.entities.get(eid, {})
            if str(ent.get("acsprov:path", "")).startswith("jref$"):
                out[ent["acsprov:path"]] = ent.get("acsprov:sha256", "")
        return out


@dataclass
class AuditResult:
    """What an audit found; rendered by :mod:`acsprov.audit.report`."""

    kind: str
    """``rerun`` or ``archive``."""
    target: str
    products: list[ProductDiff] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Products recorded (or expected) but absent on one side."""
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    """Checks of the inputs the re-run used (archive files, reference files)."""
    engine: dict[str, str] = field(default_factory=dict)
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"))
    seconds: float = 0.0
    labels: tuple[str, str] = ("recorded", "re-run")
    """What the compared sides are called (first, second)."""
    error: str | None = None
    """Why the re-run stopped, if a recorded action failed when done again."""
    simulated: list[str] = field(default_factory=list)
    """Products made from simulated data (``SIMULATE = T``), not real observations."""

    @property
    def passed(self) -> bool:
        inputs_ok = all(i.get("status") == "ok" for i in self.inputs)
        return (self.error is None and not self.missing and inputs_ok
                and all(p.identical for p in self.products))

    def summary(self) -> str:
        """One line for the terminal."""
        bad = [p for p in self.products if not p.identical]
        details = []
        if self.kind == "archive":
            n, k = len(self.products), len(bad)
            if not bad:
                text = (f"archive audit: the {n} _flt product matches the archive" if n == 1
                        else f"archive audit: all {n} _flt products match the archive")
            else:
                text = (f"archive audit: {k} of {n} _flt product{'s' if n > 1 else ''} "
                        f"differ{'s' if k == 1 else ''} from the archive")
            for p in self.products:  # each product's own switches and reference files
                own = [f"{d['keyword']}={d['b']} (archive {d['a']})"
                       for d in p.switch_differences + p.reference_differences]
                if own:
                    details.append(f"{p.name}: {', '.join(own)}")
        else:
            verdict = "PASSED" if self.passed else "FAILED"
            text = (f"audit {verdict}: {len(self.products) - len(bad)} of "
                    f"{len(self.products)} products identical within tolerance")
        for p in bad[:3]:
            exts = sorted((e for e in p.extensions if not e.identical),
                          key=lambda e: e.extname == "DQ")  # SCI and ERR first
            details.append(f"{p.name}: {', '.join(_where(e) for e in exts[:3]) or 'header'}")
        if self.error:
            details.insert(0, self.error)
        details += [f"{m}: missing" for m in self.missing[:3]]
        details += [f"{i['path']}: {i['message']}" for i in self.inputs
                    if i.get("status") != "ok"][:3]
        if self.simulated:
            details.append(f"{len(self.simulated)} of {len(self.products)} products made "
                           "from SIMULATED data, not real observations")
        return text + ("; " + "; ".join(details) if details else "")


def _where(ext: ExtensionDiff) -> str:
    """Where and by how much one extension differs, in words."""
    if not ext.bbox:
        return f"{ext.label} header"
    box = f"x {ext.bbox['x0']}-{ext.bbox['x1']} y {ext.bbox['y0']}-{ext.bbox['y1']}"
    if ext.max_abs_diff is None:  # DQ: flags, not numbers
        gained = sum(ext.dq_set.values())
        lost = sum(ext.dq_cleared.values())
        return (f"{ext.label} flags changed in {ext.n_outside} px in {box} "
                f"({gained} flags gained, {lost} lost)")
    return f"{ext.label} {ext.n_outside} px in {box} (max |diff| {ext.max_abs_diff:.4g})"


def simulated_products(products: list[ProductDiff]) -> list[str]:
    """Names of the compared products either side of which says ``SIMULATE = T``."""
    from astropy.io import fits

    found = []
    for product in products:
        for path in (product.a, product.b):
            try:
                if fits.getval(path, "SIMULATE", ext=0) is True:
                    found.append(product.name)
                    break
            except (OSError, KeyError, IndexError):
                continue
    return found


# -- reading the record --------------------------------------------------------
def _kind(record: Mapping[str, Any]) -> str:
    value = record.get("prov:type") or {}
    text = str(value.get("$", "") if isinstance(value, dict) else value)
    return text.split(":")[-1]


def load_run(workdir: Path, document: Path | None = None) -> RecordedRun:
    """The recipe run recorded in `workdir` (by default its latest recipe run).

    Raises
    ------
    BadInputError
        If `workdir` has no PROV document of a recipe run.
    """
    from ..provenance.query import documents

    root = Path(os.path.abspath(workdir))
    if not (root / "prov").is_dir():
        raise BadInputError(f"{workdir}: not an acsprov work directory (no prov/ in it)")
    candidates = [document] if document else list(reversed(documents(root)))
    for path in candidates:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise BadInputError(f"{path}: not a readable PROV-JSON document ({err})") from None
        acts = [dict(v, id=k, action=_kind(v)) for k, v in (doc.get("activity") or {}).items()]
        acts.sort(key=lambda a: str(a.get("prov:startTime", "")))
        if not acts or acts[0]["action"] != "obtain":
            continue  # a standalone action, not a recipe run
        run_entity = next((k for k, v in (doc.get("entity") or {}).items()
                           if _kind(v) == "Run"), "")
        run_label = (doc.get("entity") or {}).get(run_entity, {}).get("prov:label", root.name)
        generated: dict[str, list[str]] = {}
        for g in (doc.get("wasGeneratedBy") or {}).values():
            generated.setdefault(g.get("prov:activity"), []).append(g.get("prov:entity"))
        used: dict[str, list[str]] = {}
        for u in (doc.get("used") or {}).values():
            used.setdefault(u.get("prov:activity"), []).append(u.get("prov:entity"))
        return RecordedRun(document=Path(path), root=root, name=str(run_label),
                           run_id=run_entity.split("run-", 1)[-1], activities=acts,
                           entities=doc.get("entity") or {}, generated=generated, used=used)
    raise BadInputError(f"{workdir}: no recorded recipe run in prov/ (run `acsprov reprocess`)")


def recorded_crds_path(run: RecordedRun) -> Path | None:
    """The CRDS cache the run's steps used (from their recorded commands)."""
    for act in run.activities:
        words = shlex.split(str(act.get("acsprov:command", "")))
        if "--crds-path" in words and len(words) > words.index("--crds-path") + 1:
            cache = Path(words[words.index("--crds-path") + 1])
            cwd = run.root / str(act.get("acsprov:cwd", "."))
            if "--rundir" in words:  # the command runs from the dataset's root
                cwd = run.root
            return Path(os.path.normpath(cwd / cache)) if not cache.is_absolute() else cache
    return None


# -- the re-run audit ------------------------------------------------------------
def audit_run(
    workdir: Path,
    *,
    engine: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    crds_path: Path | None = None,
    document: Path | None = None,
    scratch: Path | None = None,
    keep_scratch: bool = False,
    say: Callable[[str], None] = print,
) -> AuditResult:
    """Re-execute the run recorded in `workdir` in a scratch copy and compare its products.

    Parameters
    ----------
    workdir : Path
        A recipe's work directory (``work/<dataset>``) with ``prov/``.
    engine : {"native", "hstcal", "auto"}, optional
        Calibrate with this engine instead of the recorded one.
    tolerances : mapping, optional
        Extension name -> :class:`~acsprov.audit.compare.Tolerance`.
    crds_path : Path, optional
        The CRDS cache to take reference files from (default: the one the run used).
    document : Path, optional
        The PROV document of the run to audit (default: the latest recipe run).
    scratch : Path, optional
        Where to re-run (default: a new temporary directory, removed afterwards
        unless `keep_scratch`).
    say : callable
        Progress messages.
    """
    import time

    from ..provenance.query import verify_documents

    started = time.perf_counter()
    run = load_run(workdir, document)  # parsed only: nothing in it is used before
    verify_documents(run.root)         # the chain of documents is checked
    _check_paths(run)                  # and every path in them confined
    failed = [a for a in run.activities if a.get("acsprov:status") != "ok"]
    if failed:
        raise BadInputError(f"{workdir}: the recorded run has a failed action "
                            f"({failed[0].get('prov:label')}); there is nothing to reproduce")
    cache = crds_path or recorded_crds_path(run)
    if cache is None or not cache.is_dir():
        raise BadInputError(f"the CRDS cache the run used ({cache}) is not there; "
                            "give it with --crds-path")
    result = AuditResult(kind="rerun", target=str(run.root),
                         tolerances=dict(tolerances or {}))
    result.notes.append(f"run {run.run_id} ({run.name}), document "
                        f"{run.document.relative_to(run.root).as_posix()}")
    _check_own_references(run.root, result)
    own_scratch = scratch is None
    base = Path(tempfile.mkdtemp(prefix="acsprov-audit-")) if own_scratch else Path(scratch)
    copy_root = base / run.root.name
    try:
        try:
            _replay(run, copy_root, cache, engine, result, say)
        except AcsprovError as err:
            result.error = f"re-run failed: {str(err).splitlines()[0]}"
        recorded = run.products()
        for rel, sha in sorted(recorded.items()):
            mine, theirs = confined(run.root, rel), confined(copy_root, rel)
            if not rel.lower().endswith((".fits", ".fits.gz")):
                _check_record(rel, mine, sha, result)  # trailers: times differ, content not
                continue
            if not theirs.exists() and not mine.exists():
                continue  # a temporary calacs deleted, in both runs
            if not mine.exists() or not theirs.exists():
                side = "work directory" if not mine.exists() else "re-run"
                result.missing.append(f"{rel} (absent from the {side})")
                continue
            if not os.path.exists(os.path.realpath(mine)):
                raise BadInputError(f"{rel}: content not present (datalad get it first)")
            say(f"compare {rel}")
            diff = compare_products(mine, theirs, name=rel, tolerances=tolerances)
            if sha256sum(mine) != sha:
                result.notes.append(f"{rel}: its content differs from the recorded sha256 "
                                    "(changed after the run)")
            result.products.append(diff)
        result.simulated = simulated_products(result.products)
    finally:
        if own_scratch and not keep_scratch:
            shutil.rmtree(base, ignore_errors=True)
        elif keep_scratch:
            result.notes.append(f"re-run kept in {copy_root}")
    result.seconds = time.perf_counter() - started
    return result


def _check_paths(run: RecordedRun) -> None:
    """Every directory and file the document names stays inside the work directory
    (and so, in the re-run, inside the scratch copy): refused before anything runs."""
    from ..provenance.query import external

    for act in run.activities:
        confined(run.root, str(act.get("acsprov:cwd", ".")))
    for ent in run.entities.values():
        rel = str(ent.get("acsprov:path", ""))
        if rel and not external(rel):
            confined(run.root, rel)


def _replay(run: RecordedRun, copy_root: Path, cache: Path, engine: str | None,
            result: AuditResult, say: Callable[[str], None]) -> None:
    """Do the recorded actions again under `copy_root`, checking inputs as they are used."""
    from ..actions import Context, get_action
    from ..environment import tool_environment
    from ..provenance import Recorder
    from ..recipe import parse_step

    env = tool_environment(cache)
    rec = Recorder(copy_root, name=f"audit-{run.name}", datalad=False, persist=False,
                   aliases={env["jref"]: "jref$"})
    engines = set()
    for act in run.activities:
        action = act["action"]
        if action == "obtain":
            _copy_archive_files(run, act, copy_root, result)
            continue
        params = json.loads(act.get("acsprov:parameters", "{}"))
        if action == "calacs":
            recorded_engine = str(act.get("acsprov:engine", "auto"))
            params.setdefault("options", {})
            params["options"] = {**params["options"], "engine": engine or recorded_engine}
            engines.add(f"{recorded_engine} -> {engine or recorded_engine}")
        step = parse_step({action: params}, f"recorded {action}")
        rundir = confined(copy_root, str(act.get("acsprov:cwd", ".")))
        rundir.mkdir(parents=True, exist_ok=True)
        say(f"re-run {act.get('prov:label', action)}")
        ctx = Context(rundir=rundir, cal_fits=copy_root / "cal_fits", env=env, say=lambda m: None)
        with rec.activity(action, params=dict(step.params), cwd=rundir) as handle:
            ctx.act = handle
            get_action(action)(ctx, step)
        _check_references(run, act, rec.run.activities[-1].used, result)
    result.engine = {"calacs": ", ".join(sorted(engines)) or "none"}


def _copy_archive_files(run: RecordedRun, act: Mapping[str, Any], copy_root: Path,
                        result: AuditResult) -> None:
    """The archive files the run obtained, copied from the work directory if unchanged."""
    for eid in run.generated.get(act["id"], []):
        ent = run.entities.get(eid, {})
        rel = ent.get("acsprov:path", "")
        source = confined(run.root, rel)
        check = {"path": rel, "kind": "archive file", "recorded": ent.get("acsprov:sha256")}
        if not os.path.exists(source):
            check.update(status="missing", message="not present in the work directory")
        else:
            check["found"] = sha256sum(source)
            ok = check["found"] == check["recorded"]
            check.update(status="ok" if ok else "changed",
                         message="as recorded" if ok else "differs from the recorded sha256")
            target = confined(copy_root, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        result.inputs.append(check)


def _check_record(rel: str, path: Path, sha: str, result: AuditResult) -> None:
    """A product the audit does not compare (a trailer) must still be the recorded one."""
    if not os.path.lexists(path):
        result.missing.append(f"{rel} (absent from the work directory)")
    elif sha256sum(path) != sha:
        result.inputs.append({"path": rel, "kind": "product", "recorded": sha,
                              "found": sha256sum(path), "status": "changed",
                              "message": "differs from the recorded sha256"})


def _check_own_references(root: Path, result: AuditResult) -> None:
    """The reference files a run keeps in its dataset (``crds/``) must be those it used,
    whatever cache the re-run reads its references from."""
    from ..provenance.query import documents, recorded_state

    docs = [json.loads(path.read_text()) for path in documents(root)]
    _, references = recorded_state(docs)
    for (rel, sha), where in sorted(references.items()):
        if not where or os.path.isabs(where):
            continue  # outside the dataset: checked where the re-run reads it
        path = Path(root) / where
        if not path.is_file() or _annex_pointer(path):
            continue  # content not got in this clone: the re-run's cache is checked
        found = sha256sum(path)
        if found != sha:
            result.inputs.append({
                "path": rel, "kind": "reference file", "recorded": sha, "found": found,
                "status": "changed",
                "message": f"the dataset's own copy ({where}) differs from the recorded "
                           "sha256"})


def _annex_pointer(path: Path) -> bool:
    """True for an unlocked git-annex file whose content is not present (a pointer)."""
    if path.stat().st_size > 1024:
        return False
    return path.read_bytes().startswith(b"/annex/objects/")


def _check_references(run: RecordedRun, act: Mapping[str, Any], used: list,
                      result: AuditResult) -> None:
    """Reference files the re-run read must be those the run recorded (name and sha256)."""
    recorded = run.references(act["id"])
    again = {u.path: u.sha256 for u in used if u.path.startswith("jref$")}
    for path in sorted(recorded.keys() | again.keys()):
        check = {"path": path, "kind": "reference file", "recorded": recorded.get(path),
                 "found": again.get(path), "action": act.get("prov:label", act["action"])}
        if path not in again:
            check.update(status="unused", message="recorded but not read by the re-run")
        elif path not in recorded:
            check.update(status="extra", message="read by the re-run, not recorded")
        elif recorded[path] != again[path]:
            check.update(status="changed", message="content differs from the recorded sha256")
        else:
            check.update(status="ok", message="as recorded")
        if check["status"] != "ok" or not any(i["path"] == path for i in result.inputs):
            result.inputs.append(check)


# -- the archive audit --------------------------------------------------------------
def audit_archive(
    root: Path,
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    say: Callable[[str], None] = print,
) -> AuditResult:
    """Compare a recipe run's ``_flt`` products with the archive's ``_flt`` files.

    Parameters
    ----------
    root : Path
        The recipe's work directory (``work/<dataset>``), with the archive files in
        ``cal_fits/`` and the run directories beside it.
    """
    import time

    started = time.perf_counter()
    root = Path(os.path.abspath(root))
    archive = root / "cal_fits"
    ours = sorted(p for p in root.glob("*/*_flt.fits") if p.parent.name != "cal_fits")
    result = AuditResult(kind="archive", target=str(root), tolerances=dict(tolerances or {}),
                         labels=("archive", "recalibrated"))
    pairs = [(archive / p.name, p) for p in ours if (archive / p.name).exists()]
    result.missing = [f"{p.relative_to(root).as_posix()} (no archive {p.name})"
                      for p in ours if not (archive / p.name).exists()]
    if not pairs:
        raise BadInputError(f"{root}: no recalibrated _flt product with an archive _flt "
                            "beside it in cal_fits/")
    for theirs, mine in pairs:
        rel = mine.relative_to(root).as_posix()
        say(f"compare {rel} with the archive's {theirs.name}")
        result.products.append(compare_products(theirs, mine, name=rel, tolerances=tolerances,
                                                ignore_keywords=ARCHIVE_IGNORE))
    result.simulated = simulated_products(result.products)
    result.notes.append("differences from the archive are expected where the recipe changes "
                        "switches or reference files; the report says which and by how much")
    result.seconds = time.perf_counter() - started
    return result
