"""Publishable bundles: an RO-Crate of a recorded run, with its DataLad dataset inside.

``make_bundle`` writes a directory that is an RO-Crate (Workflow Run Crate profile:
the recipe is the crate's main workflow, the run and each of its actions are
``CreateAction`` entities) holding:

- ``data/``: the products of the run (each file's last recorded version), FITS and
  calacs trailers, exactly as the PROV documents record them;
- ``prov/``: the PROV documents (PROV-JSON, PROV-N, Turtle) and the graph;
- ``recipe.yaml``: the recipe as run;
- ``environment.json``: Python, platform, every installed package, the CRDS context and
  the calibration engine;
- ``dataset.git/``: the DataLad dataset as a bare git repository with every annexed
  file version, which ``datalad clone <bundle>/dataset.git`` and ``datalad get`` use;
- ``manifest-sha256.txt``: the sha256 of every other file of the bundle (the crate
  metadata carries the same checksums for every file it describes).  git-annex's
  working state in ``dataset.git/annex/`` (its index, databases and locks, which it
  rebuilds and rewrites whenever someone gets content from the bundle) is left out;
  the annexed objects themselves are covered.

``check_bundle`` verifies a received bundle without re-running anything: every
checksum, no file missing or added, the crate metadata agreeing with the manifest,
the PROV documents parsing and naming exactly the products' contents, and the
documents being those committed in the DataLad dataset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .audit.replay import RecordedRun, load_run
from .errors import AcsprovError, BadInputError
from .fitsutil import sha256sum

__all__ = ["MANIFEST", "NAMESPACE", "SIGNATURE", "BundleCheck", "BundleError", "check_bundle",
           "make_bundle", "recipe_from_run", "sign_manifest", "verify_signature"]

MANIFEST = "manifest-sha256.txt"
SIGNATURE = f"{MANIFEST}.sig"
"""OpenSSH signature of the manifest (``ssh-keygen -Y sign``), when the bundle is signed."""
NAMESPACE = "acsprov-bundle"
"""The signature namespace: a signature made for another purpose (a git commit, a
file) is not accepted as a bundle's."""
METADATA = "ro-crate-metadata.json"
DATASET_DIR = "dataset.git"
README = "README.md"
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
#: The rocrate library adds its Workflow RO-Crate profile with the main workflow.
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/"
_FORMATS = {
    ".fits": "application/fits", ".json": "application/json",
    ".provn": "text/provenance-notation", ".ttl": "text/turtle", ".svg": "image/svg+xml",
    ".png": "image/png", ".yaml": "application/yaml", ".tra": "text/plain",
    ".txt": "text/plain", ".md": "text/markdown",
}


class BundleError(AcsprovError):
    """A bundle cannot be made, or a received bundle does not verify."""

    exit_code = 6


@dataclass
class BundleCheck:
    """What :func:`check_bundle` verified."""

    files: int
    documents: int
    products: int
    signer: str | None = None
    """The principal whose trusted key signed the manifest (when checked)."""
    signed: bool = False
    """Whether the bundle carries a signature (verified only with trusted signers)."""


# -- making ---------------------------------------------------------------------------
def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from .provenance._datalad import _ensure_git_annex

    _ensure_git_annex()
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=False)
    if check and proc.returncode:
        message = (proc.stderr.strip() or proc.stdout.strip() or "failed").splitlines()[-1]
        raise BundleError(f"git {' '.join(args[:2])} in {root}: {message}")
    return proc


def make_bundle(workdir: Path, out: Path, *, say: Callable[[str], None] = print,
                sign_key: Path | None = None) -> Path:
    """Write the bundle of the run recorded in `workdir` to the new directory `out`.

    The work directory is verified first (:func:`acsprov.provenance.query.verify`:
    every recorded file, reference file and PROV document); with `sign_key` (an
    OpenSSH private key) the manifest is signed (:func:`sign_manifest`).

    Raises
    ------
    BundleError
        If `out` exists, `workdir` has uncommitted changes, or a product no longer
        matches its provenance record.
    """
    from .provenance.query import verify

    workdir = Path(os.path.abspath(workdir))
    out = Path(os.path.abspath(out))
    if out.exists():
        raise BundleError(f"{out} exists; give a new directory for the bundle")
    if sign_key is not None and not Path(sign_key).is_file():
        raise BadInputError(f"{sign_key}: no such signing key")
    verify(workdir)
    run = load_run(workdir)
    if not (workdir / ".git").exists():
        raise BundleError(f"{workdir} is not a DataLad dataset; bundles need its history")
    dirty = _git(workdir, "status", "--porcelain", "--untracked-files=normal").stdout.strip()
    if dirty:
        first = dirty.splitlines()[0][3:]
        raise BundleError(f"{workdir} has uncommitted changes ({first}); save or discard them")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        products = _copy_products(run, staging, say)
        documents = _copy_tree(workdir / "prov", staging / "prov")
        (staging / "recipe.yaml").write_text(recipe_from_run(run))
        (staging / README).write_text(_readme(run, run_is_simulated(run)))
        (staging / "environment.json").write_text(
            json.dumps(environment_description(run), indent=1, sort_keys=True) + "\n")
        if run_is_simulated(run):
            say(f"{SIMULATED_NOTE} The bundle's metadata says so.")
        say(f"clone the DataLad dataset with its annexed content into {DATASET_DIR}/")
        _bare_dataset(workdir, staging / DATASET_DIR)
        _write_crate(run, staging, products, documents)
        _write_manifest(staging)
        if sign_key is not None:
            sign_manifest(staging, Path(sign_key))
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _copy_products(run: RecordedRun, staging: Path, say: Callable[[str], None]) -> list[str]:
    """Copy each product's recorded version into ``data/``; return bundle paths."""
    copied = []
    from .provenance.query import confined

    for rel, sha in sorted(run.products().items()):
        source = confined(run.root, rel)
        if not source.exists():
            continue  # temporaries calacs deleted (verify refused any other)
        if sha256sum(source) != sha:
            raise BundleError(f"{rel}: content differs from its provenance record; "
                              "audit the run (acsprov audit) before publishing")
        target = staging / "data" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copied.append(f"data/{rel}")
    say(f"{len(copied)} products")
    return copied


def _copy_tree(source: Path, target: Path) -> list[str]:
    copied = []
    for path in sorted(source.rglob("*")):
        if path.is_dir():
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)  # follows annex symlinks: the content, not the link
        copied.append(f"{target.name}/{path.relative_to(source).as_posix()}")
    return copied


def _bare_dataset(workdir: Path, target: Path) -> None:
    """A bare clone of the dataset holding every annexed version, with no link back."""
    _git(workdir.parent, "clone", "--quiet", "--bare", "--no-hardlinks", str(workdir),
         str(target))
    _git(target, "annex", "init", "--quiet", "acsprov bundle")
    _git(target, "annex", "get", "--quiet", "--all", "--from", "origin")
    _git(target, "annex", "fsck", "--quiet", "--fast", "--all")
    _git(target, "remote", "remove", "origin")
    _git(target, "gc", "--quiet")
    _git(target, "update-server-info")  # so that the bundle can be served over plain HTTP
    for sample in (target / "hooks").glob("*.sample"):
        sample.unlink()
    # git-annex's working state (databases, index, locks): rebuilt on demand, and
    # rewritten whenever someone gets content from the bundle; only objects are data
    for path in (target / "annex").iterdir():
        if path.name != "objects":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def recipe_from_run(run: RecordedRun) -> str:
    """The recipe of `run` as YAML, rebuilt from its PROV document.

    The shipped recipe of that name is returned verbatim (with its comments) when it
    describes exactly the recorded actions.
    """
    from .recipe import load_recipe, parse_recipe

    datasets, runs, source = [], {}, "auto"
    for act in run.activities:
        params = json.loads(act.get("acsprov:parameters", "{}"))
        if act["action"] == "obtain":
            datasets.append(params.get("dataset"))
            source = str(act.get("acsprov:source", params.get("source", "auto")))
            continue
        runs.setdefault(str(act.get("acsprov:cwd", ".")), []).append({act["action"]: params})
    data = {"name": run.name, "title": f"{run.name} as recorded in run {run.run_id}",
            "source": source, "datasets": datasets,
            "runs": [{"name": name, "steps": steps} for name, steps in runs.items()]}
    rebuilt = parse_recipe(data)
    try:
        shipped = load_recipe(run.name)
    except AcsprovError:
        shipped = None
    if shipped is not None and shipped.path is not None and \
            [r.steps for r in shipped.runs] == [r.steps for r in rebuilt.runs] and \
            [r.name for r in shipped.runs] == [r.name for r in rebuilt.runs]:
        return shipped.path.read_text()
    header = (f"# Recipe {run.name}, rebuilt from the PROV document of run {run.run_id}:\n"
              "# `acsprov reprocess recipe.yaml` runs it again.\n")
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def environment_description(run: RecordedRun) -> dict[str, Any]:
    """Software and environment of the run (recorded) and of the bundle's making."""
    from .provenance.software import image_identity, software_versions

    agents = {}
    engines, contexts = set(), set()
    for act in run.activities:
        if act.get("acsprov:engine"):
            engines.add(str(act["acsprov:engine"]))
        if act.get("acsprov:crds_context"):
            contexts.add(str(act["acsprov:crds_context"]))
    doc = json.loads(run.document.read_text())
    for key, agent in (doc.get("agent") or {}).items():
        agents[key] = {k: (v.get("$") if isinstance(v, dict) else v) for k, v in agent.items()}
    packages = sorted(f"{d.metadata['Name']}=={d.version}"
                      for d in importlib.metadata.distributions() if d.metadata["Name"])
    return {
        "recorded": {"agents": agents, "engines": sorted(engines),
                     "crds_contexts": sorted(contexts)},
        "bundled_with": {"software": software_versions(), "image": image_identity(),
                         "packages": sorted(set(packages))},
    }


SIMULATED_NOTE = ("SIMULATED DATA: the archive files of this run were made by acsprov's "
                  "simulator (SIMULATE = T in every FITS header), not observed by Hubble; "
                  "so is every product.")
CRATE_VERSION = "1.1"
"""The RO-Crate version the declared run-crate profiles (0.5) build on."""
LICENSE = "https://creativecommons.org/publicdomain/zero/1.0/"
"""The bundle's license: HST data are public once out of their proprietary period; the
products and records a run adds are dedicated to the public domain (CC0 1.0)."""
ACSPROV_URL = "https://pypi.org/project/acsprov/"
ENGINE_URLS = {
    "hstcal": "https://github.com/spacetelescope/hstcal",
    "native": ACSPROV_URL,
}


def crate_time(value: object) -> str | None:
    """A PROV time as the run-crate profiles want it: ISO 8601, milliseconds at most,
    an explicit ``+HH:MM`` offset (UTC)."""
    if not value:
        return None
    when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def run_is_simulated(run: RecordedRun) -> bool:
    """True if any archive file of `run` came from the simulator."""
    return any(str(a.get("acsprov:simulated", "")).lower() == "true"
               or a.get("acsprov:source") == "simulate"
               for a in run.activities if a["action"] == "obtain")


def _write_crate(run: RecordedRun, staging: Path, products: list[str],
                 documents: list[str]) -> None:
    """ro-crate-metadata.json describing every file of the bundle (the data already there).

    RO-Crate 1.1 with the Process Run Crate 0.5, Workflow Run Crate 0.5 and Workflow
    RO-Crate 1.0 profiles: the recipe is the main workflow, the run one CreateAction
    whose instrument it is, and each recorded action a CreateAction of the software
    that did it (acsprov, or the calacs engine), all mentioned by the root.
    """
    from rocrate.model.computerlanguage import ComputerLanguage
    from rocrate.model.contextentity import ContextEntity
    from rocrate.model.person import Person
    from rocrate.model.softwareapplication import SoftwareApplication
    from rocrate.rocrate import ROCrate

    from . import __version__

    simulated = run_is_simulated(run)
    crate = ROCrate(version=CRATE_VERSION)
    crate.name = (f"acsprov run {run.name} ({run.run_id})"
                  + (" — SIMULATED DATA" if simulated else ""))
    crate.description = ((SIMULATED_NOTE + " " if simulated else "")
                         + "Recalibrated HST/ACS products with their W3C-PROV provenance, "
                         "recipe, software environment and DataLad dataset "
                         f"(datalad clone <bundle>/{DATASET_DIR}).")
    crate.datePublished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    crate.root_dataset["keywords"] = ["HST", "ACS", "calacs", "provenance", "W3C PROV"] + (
        ["simulated data"] if simulated else [])
    crate.root_dataset["license"] = crate.add(ContextEntity(crate, LICENSE, properties={
        "@type": "CreativeWork", "name": "CC0 1.0 Universal (public domain dedication)"}))
    user = _user(run)
    organization = crate.add(ContextEntity(crate, "#organization", properties={
        "@type": "Organization",
        "name": os.environ.get("ACSPROV_ORGANIZATION") or f"organization of {user} "
        "(not given: set ACSPROV_ORGANIZATION)",
        **({"url": {"@id": os.environ["ACSPROV_ORGANIZATION_URL"]}}
           if os.environ.get("ACSPROV_ORGANIZATION_URL") else {})}))
    person = crate.add(Person(crate, f"#person-{user}", properties={
        "name": user, "affiliation": organization}))
    crate.root_dataset["author"] = person
    crate.root_dataset["publisher"] = organization
    shas = {rel: sha256sum(staging / rel) for rel in _all_files(staging)
            if rel not in (METADATA, MANIFEST)}

    def props(rel: str, **extra: Any) -> dict[str, Any]:
        fmt = _FORMATS.get(Path(rel).suffix.lower(), "application/octet-stream")
        return {"name": Path(rel).name, "sha256": shas[rel],
                "contentSize": str((staging / rel).stat().st_size),
                "encodingFormat": fmt, **extra}

    language = crate.add(ComputerLanguage(crate, "#acsprov-recipe", properties={
        "name": "acsprov recipe", "alternateName": "acsprov dataset recipe (YAML)",
        "url": {"@id": ACSPROV_URL}, "version": __version__}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workflow = crate.add_workflow(None, "recipe.yaml", main=True, lang=language,
                                      properties=props("recipe.yaml",
                                                       name=f"recipe {run.name}",
                                                       version=run.run_id,
                                                       url={"@id": ACSPROV_URL}))
    workflow["conformsTo"] = {"@id": BIOSCHEMAS_WORKFLOW}
    for profile, name in PROFILES.items():
        if profile not in crate:
            entity = crate.add(ContextEntity(crate, profile, properties={
                "@type": "CreativeWork", "name": name, "version": profile.rsplit("/", 1)[-1]}))
            crate.root_dataset.append_to("conformsTo", entity)
    software = crate.add(SoftwareApplication(crate, ACSPROV_URL, properties={
        "name": "acsprov", "version": __version__, "url": {"@id": ACSPROV_URL},
        "description": "Reproducible recalibration of Hubble ACS data with provenance"}))
    engines: dict[str, Any] = {}
    files: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the files are in place: nothing to copy
        for rel in products:
            files[rel] = crate.add_file(None, rel, properties=props(
                rel, description=f"product {rel[5:]}"
                + (" (made from SIMULATED data)" if simulated else "")))
        for rel in documents:
            extra = {"description": "PROV document of the run"}
            if rel.endswith(".html"):
                extra["description"] = "lineage page of the run: each product's chain"
            if rel.endswith(".json"):
                extra["conformsTo"] = {"@id": "https://www.w3.org/submissions/prov-json/"}
            files[rel] = crate.add_file(None, rel, properties=props(rel, **extra))
        crate.add_file(None, README, properties=props(
            README, encodingFormat="text/markdown", about=crate.root_dataset,
            description="what the bundle holds and how to use it"))
        env = crate.add_file(None, "environment.json", properties=props(
            "environment.json", description="software and environment of the run"))
        dataset = crate.add_dataset(None, f"{DATASET_DIR}/", properties={
            "name": "DataLad dataset",
            "description": ("The run's DataLad dataset: a bare git repository with "
                            "git-annex objects of every file version. "
                            f"`datalad clone <bundle>/{DATASET_DIR} DIR` then "
                            "`datalad get FILE`; `datalad rerun` re-makes the products.")})
        parts = []
        for rel in sorted(shas):
            if rel.startswith(f"{DATASET_DIR}/"):
                parts.append(crate.add_file(None, rel, properties=props(rel)))
        dataset["hasPart"] = parts
    software["softwareRequirements"] = env
    by_path = {rel[5:]: f for rel, f in files.items() if rel.startswith("data/")}
    inputs: dict[str, Any] = {}
    actions = []
    for act in run.activities:
        used = [run.entities.get(e, {}) for e in run.used.get(act["id"], [])]
        made = [run.entities.get(e, {}) for e in run.generated.get(act["id"], [])]
        instrument = software
        if act.get("acsprov:engine"):
            kind = str(act["acsprov:engine"])
            name = f"calacs ({kind} engine)"
            url = ENGINE_URLS.get(kind, ACSPROV_URL)
            if name not in engines:
                engines[name] = crate.add(SoftwareApplication(
                    crate, f"{url}#calacs-{kind}", properties={
                        "name": name, "url": {"@id": url},
                        "version": str(act.get("acsprov:engine_version") or __version__)}))
            instrument = engines[name]
        objects = []
        for ent in used:
            path = str(ent.get("acsprov:path", ""))
            if not path or path.startswith("/"):
                continue
            objects.append(_input(crate, inputs, ent, by_path, simulated))
        if act["action"] == "obtain":
            objects = []
            made_ids = [_input(crate, inputs, ent, by_path, simulated) for ent in made]
        else:
            made_ids = [by_path[str(e.get("acsprov:path"))] for e in made
                        if str(e.get("acsprov:path")) in by_path
                        and run.products().get(str(e.get("acsprov:path")))
                        == e.get("acsprov:sha256")]
            if not made_ids:  # replaced later in the run, or deleted (calacs temporaries)
                made_ids = [_input(crate, inputs, e, by_path, simulated) for e in made
                            if e.get("acsprov:path")
                            and not str(e["acsprov:path"]).startswith("/")]
        properties = {
            "@type": "CreateAction", "name": str(act.get("prov:label", act["action"])),
            "instrument": instrument, "object": objects, "result": made_ids,
            "agent": person,
            "startTime": crate_time(act.get("prov:startTime")),
            "endTime": crate_time(act.get("prov:endTime")),
            "actionStatus": "http://schema.org/CompletedActionStatus",
            "description": str(act.get("acsprov:command") or act["action"]),
        }
        actions.append(crate.add(ContextEntity(
            crate, f"#action-{act['id'].split(':')[-1]}",
            properties={k: v for k, v in properties.items() if v not in (None, [])})))
    run_action = crate.add(ContextEntity(crate, f"#run-{run.run_id}", properties={
        "@type": "CreateAction", "name": f"run {run.run_id} of recipe {run.name}",
        "description": f"acsprov reprocess {run.name}"
        + (" (on simulated data)" if simulated else ""),
        "instrument": workflow, "agent": person,
        "object": [e for e in inputs.values()],
        "result": list(by_path.values()),
        "startTime": crate_time(run.activities[0].get("prov:startTime")),
        "endTime": crate_time(run.activities[-1].get("prov:endTime")),
        "actionStatus": "http://schema.org/CompletedActionStatus",
        "subjectOf": [files[d] for d in documents if d.endswith(".json")],
    }))
    run_action["hasPart"] = actions
    crate.root_dataset["mentions"] = [run_action, *actions]
    _single_values(crate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no source": the files are already in place
        crate.write(staging)


def _single_values(crate: Any) -> None:
    """One value rather than a one-element list, as RO-Crate 1.1 recommends; no empty
    lists."""
    for entity in crate.get_entities():
        for key, value in list(entity._jsonld.items()):
            if isinstance(value, list) and len(value) == 1 and key != "@type":
                entity._jsonld[key] = value[0]
            elif isinstance(value, list) and not value:
                del entity._jsonld[key]


def _readme(run: RecordedRun, simulated: bool) -> str:
    """README.md of a bundle."""
    warning = ("\n**Simulated data**: the archive files were made by acsprov's simulator "
               "(`SIMULATE = T` in every FITS header); the products are not Hubble "
               "observations.\n" if simulated else "")
    return (f"# acsprov run {run.name} ({run.run_id})\n{warning}\n"
            "- `data/`: the products, as the PROV documents record them\n"
            "- `prov/`: the W3C-PROV documents (PROV-JSON, PROV-N, Turtle) and the graph\n"
            "- `recipe.yaml`: the recipe as run (`acsprov reprocess recipe.yaml`)\n"
            "- `environment.json`: software and environment of the run\n"
            f"- `{DATASET_DIR}/`: the DataLad dataset: `datalad clone {DATASET_DIR} DIR`, "
            "`datalad get .`, `datalad rerun --since=` re-makes every product\n"
            f"- `{MANIFEST}`: sha256 of every file; `acsprov publish --check` verifies "
            "the bundle\n"
            f"- `{METADATA}`: RO-Crate 1.1 metadata (Process Run Crate, Workflow Run "
            "Crate)\n")


def _user(run: RecordedRun) -> str:
    """The person the run's PROV document names as its operator."""
    doc = json.loads(run.document.read_text())
    for agent in (doc.get("agent") or {}).values():
        kind = agent.get("prov:type")
        kind = kind.get("$") if isinstance(kind, dict) else kind
        if kind == "prov:Person":
            return str(agent.get("prov:label", "unknown"))
    return "unknown"


def _input(crate: Any, inputs: dict[str, Any], ent: dict[str, Any],
           by_path: dict[str, Any], simulated: bool = False) -> Any:
    """A crate entity for a file a run read: the bundled product, or a contextual file."""
    from rocrate.model.contextentity import ContextEntity

    path = str(ent.get("acsprov:path", ""))
    if path in by_path and ent.get("acsprov:sha256") == by_path[path].get("sha256"):
        return by_path[path]
    key = f"#file-{ent.get('acsprov:sha256', '')[:16]}-{path.replace('$', '_')}"
    if key not in inputs:
        where = ("a reference file of the CRDS cache" if path.startswith("jref$")
                 else f"in the DataLad dataset ({DATASET_DIR}, history of {path})")
        if simulated and path.startswith("cal_fits/"):
            where = "simulated archive file (acsprov simulator), " + where
        inputs[key] = crate.add(ContextEntity(crate, key, properties={
            "@type": ["File", "MediaObject"], "name": path,
            "sha256": ent.get("acsprov:sha256"), "description": where,
            **({"contentSize": str(ent["acsprov:size"])} if ent.get("acsprov:size") else {}),
            "encodingFormat": _FORMATS.get(Path(path).suffix.lower(),
                                           "application/octet-stream")}))
    return inputs[key]


def _all_files(root: Path) -> list[str]:
    """The bundle's files, without git-annex's working state in the dataset."""
    return sorted(rel for p in root.rglob("*") if p.is_file() or p.is_symlink()
                  if not _annex_state(rel := p.relative_to(root).as_posix()))


def _annex_state(rel: str) -> bool:
    annex = f"{DATASET_DIR}/annex/"
    return rel.startswith(annex) and not rel.startswith(f"{annex}objects/")


def _manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{sha}  {rel}\n" for rel, sha in sorted(entries))


def _write_manifest(staging: Path) -> None:
    entries = [(rel, sha256sum(staging / rel)) for rel in _all_files(staging)
               if rel not in (MANIFEST, SIGNATURE)]
    (staging / MANIFEST).write_text(_manifest_text(entries))


# -- checking ----------------------------------------------------------------------
def check_bundle(bundle: Path, *, trusted_signers: Path | None = None) -> BundleCheck:
    """Verify a bundle made by :func:`make_bundle`; see the module docstring.

    With `trusted_signers` (an OpenSSH ``allowed_signers`` file) the manifest must
    carry a valid signature by one of them (:func:`verify_signature`), checked first.

    Raises
    ------
    BundleError
        Naming the first file or record that does not verify.
    """
    bundle = Path(bundle)
    manifest = bundle / MANIFEST
    if not manifest.is_file() or manifest.is_symlink():
        raise BadInputError(f"{bundle}: not an acsprov bundle (no {MANIFEST})")
    signer = verify_signature(bundle, trusted_signers) if trusted_signers else None
    listed = _read_manifest(manifest)
    present = {rel for rel in _all_files(bundle) if rel not in (MANIFEST, SIGNATURE)}
    for rel in sorted(present - listed.keys()):
        raise BundleError(f"{rel}: in the bundle but not in {MANIFEST}")
    for rel, sha in sorted(listed.items()):
        path = bundle / rel
        if not path.is_file():
            raise BundleError(f"{rel}: listed in {MANIFEST} but missing")
        if sha256sum(path) != sha:
            raise BundleError(f"{rel}: sha256 differs from {MANIFEST}")
    _check_metadata(bundle, listed)
    documents, products = _check_provenance(bundle, listed)
    return BundleCheck(files=len(listed), documents=documents, products=products,
                       signer=signer, signed=(bundle / SIGNATURE).is_file())


# -- signing -----------------------------------------------------------------------
def _ssh_keygen(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if not shutil.which("ssh-keygen"):
        raise BundleError("ssh-keygen (OpenSSH 8.2 or newer) is needed to sign or check "
                          "signatures; install openssh-client")
    return subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True,
                          check=False)


def sign_manifest(bundle: Path, key: Path) -> Path:
    """Sign the bundle's manifest with the OpenSSH private `key`; return the signature.

    ``ssh-keygen -Y sign -n acsprov-bundle`` (the scheme git uses for signed commits)
    writes ``manifest-sha256.txt.sig`` beside it.  The manifest lists the sha256 of
    every other file, so the signature covers the whole bundle.
    """
    manifest = Path(bundle) / MANIFEST
    signature = Path(bundle) / SIGNATURE
    signature.unlink(missing_ok=True)
    proc = _ssh_keygen("-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(manifest))
    if proc.returncode or not signature.is_file():
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BundleError(f"could not sign with {key}: {detail[-1] if detail else 'failed'}")
    return signature


def verify_signature(bundle: Path, allowed_signers: Path) -> str:
    """Check the manifest's signature against an ``allowed_signers`` file; return the
    principal that signed it.

    Raises
    ------
    BundleError
        If the bundle is unsigned, or its signature is not valid for its manifest
        by a key of `allowed_signers` in the ``acsprov-bundle`` namespace.
    """
    allowed_signers = Path(allowed_signers)
    if not allowed_signers.is_file():
        raise BadInputError(f"{allowed_signers}: no such allowed_signers file")
    manifest = Path(bundle) / MANIFEST
    signature = Path(bundle) / SIGNATURE
    if not signature.is_file() or signature.is_symlink():
        raise BundleError(f"the bundle is not signed (no {SIGNATURE})")
    found = _ssh_keygen("-Y", "find-principals", "-s", str(signature),
                        "-f", str(allowed_signers))
    principals = found.stdout.decode(errors="replace").split()
    if found.returncode or not principals:
        raise BundleError(f"{SIGNATURE}: not made by a key in {allowed_signers.name}")
    data = manifest.read_bytes()
    for principal in principals:
        proc = _ssh_keygen("-Y", "verify", "-f", str(allowed_signers), "-I", principal,
                           "-n", NAMESPACE, "-s", str(signature), stdin=data)
        if proc.returncode == 0:
            return principal
    raise BundleError(f"{SIGNATURE}: not a valid signature of {MANIFEST} by "
                      f"{', '.join(principals)}")


def _read_manifest(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        entries = {}
        for line in text.splitlines():
            sha, sep, rel = line.partition("  ")
            if not sep or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ValueError(line)
            entries[rel] = sha
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"{path.name}: malformed line") from None
    if _manifest_text(entries.items()).encode("utf-8") != raw:
        raise BundleError(f"{path.name}: not in its canonical form (edited?)")
    return entries


def _check_metadata(bundle: Path, listed: dict[str, str]) -> None:
    try:
        graph = json.loads((bundle / METADATA).read_text())["@graph"]
    except (OSError, ValueError, KeyError) as err:
        raise BundleError(f"{METADATA}: not readable RO-Crate metadata ({err})") from None
    by_id = {e.get("@id"): e for e in graph}
    root = by_id.get("./", {})
    conforms = {c.get("@id") for c in _as_list(root.get("conformsTo"))}
    missing = [p for p in PROFILES if p not in conforms]
    if not any(str(c).startswith(WORKFLOW_RO_CRATE) for c in conforms):
        missing.append(WORKFLOW_RO_CRATE)
    if missing:
        raise BundleError(f"{METADATA}: root does not conform to {missing[0]}")
    described = 0
    for entity in graph:
        types = _as_list(entity.get("@type"))
        ident = str(entity.get("@id", ""))
        if "File" not in types or ident.startswith(("#", "http")):
            continue
        if ident not in listed:
            raise BundleError(f"{METADATA}: describes {ident}, which is not in the bundle")
        if entity.get("sha256") != listed[ident]:
            raise BundleError(f"{METADATA}: sha256 of {ident} differs from {MANIFEST}")
        described += 1
    undescribed = [r for r in listed if r != METADATA and r not in by_id]
    if undescribed:
        raise BundleError(f"{METADATA}: {undescribed[0]} is not described")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _check_provenance(bundle: Path, listed: dict[str, str]) -> tuple[int, int]:
    """PROV documents parse, name each product's content, and are the dataset's own."""
    from .provenance._prov import read_document

    docs = sorted(rel for rel in listed if rel.startswith("prov/") and rel.endswith(".json"))
    if not docs:
        raise BundleError("the bundle holds no PROV document")
    contents = []
    for rel in docs:
        try:
            read_document(bundle / rel)
        except Exception as err:  # prov raises many types for a broken document
            raise BundleError(f"{rel}: not a valid PROV-JSON document ({err})") from None
        contents.append(json.loads((bundle / rel).read_text()))
        committed = _git(bundle / DATASET_DIR, "show", f"HEAD:{rel}", check=False)
        if committed.returncode or committed.stdout != (bundle / rel).read_text():
            raise BundleError(f"{rel}: not the document committed in {DATASET_DIR}")
    _check_document_chain(bundle / DATASET_DIR, docs)
    _check_annex_objects(bundle / DATASET_DIR)
    products = [rel for rel in listed if rel.startswith("data/")]
    _check_products(bundle, listed, contents, products)
    return len(docs), len(products)


def _check_document_chain(dataset: Path, docs: list[str]) -> None:
    """Each document is the one acsprov's newest record in the dataset's history names."""
    from .provenance.query import RECORD_LINE, commit_record

    log = _git(dataset, "log", "--format=%x00%B", "HEAD", check=False)
    chain: dict[str, str] = {}
    for message in log.stdout.split("\0"):
        record = commit_record(message)
        if isinstance(record.get("prov"), str) and record["prov"] not in chain:
            chain[record["prov"]] = str(record.get("prov_sha256", ""))
    for rel in docs:
        text = _git(dataset, "show", f"HEAD:{rel}", check=False).stdout
        if chain.get(rel) != hashlib.sha256(text.encode()).hexdigest():
            raise BundleError(f"{rel}: not the document acsprov recorded in {DATASET_DIR} "
                              f"(no {RECORD_LINE.strip()} or run record with its sha256)")


def _check_annex_objects(dataset: Path) -> None:
    """Each annexed file version in the dataset has the content its key names (the
    key is a BLAKE3 checksum: ``git annex calckey`` recomputes it, writing nothing)."""
    from .provenance._datalad import ANNEX_BACKEND

    objects = sorted(p for p in (dataset / "annex" / "objects").rglob("*")
                     if p.is_file() and not p.is_symlink())
    if not objects:
        return
    proc = subprocess.run(["git", "-C", str(dataset), "annex", "calckey", "--batch",
                           "--backend", ANNEX_BACKEND], input="".join(f"{p}\n" for p in objects),
                          capture_output=True, text=True, check=False)
    keys = proc.stdout.split("\n")
    for index, path in enumerate(objects):
        if proc.returncode or index >= len(keys) or keys[index] != path.name:
            raise BundleError(f"{path.relative_to(dataset.parent).as_posix()}: content "
                              "differs from its git-annex key")


def _check_products(bundle: Path, listed: dict[str, str], contents: list[dict[str, Any]],
                    products: list[str]) -> None:
    """Every product is its *latest* recorded version, and none recorded is missing."""
    from .provenance.query import recorded_state

    latest, _ = recorded_state(contents)
    for rel in products:
        recorded = latest.get(rel[5:])
        if recorded is None or recorded[0] != listed[rel]:
            raise BundleError(f"{rel}: its content is not the latest version the PROV "
                              "documents record")
    try:
        expected = load_run(bundle).products()
    except AcsprovError as err:
        raise BundleError(f"the bundle's PROV documents hold no recipe run ({err})") from None
    for rel in sorted(expected):
        state = latest.get(rel)
        if state is not None and not state[1] and f"data/{rel}" not in listed:
            raise BundleError(f"data/{rel}: recorded as a product but not in the bundle")
