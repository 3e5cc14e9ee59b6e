"""The publish bundle checked by the RO-Crate community's own tools, offline.

``rocrate-validator`` (PyPI ``roc-validator``) validates a fresh bundle at REQUIRED
and RECOMMENDED level against every profile its metadata declares, and the ``rocrate``
library loads it.  The validator resolves the crate's ``@context`` over HTTP through
its cache; the cache is primed here with the RO-Crate context the ``rocrate`` package
ships, so nothing is fetched.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

CONTEXT_11 = "https://w3id.org/ro/crate/1.1/context"
#: Terms RO-Crate 1.1 maps to bioschemas.org directly (1.2 moved them under /terms/).
BIOSCHEMAS_11 = ("ComputationalWorkflow", "FormalParameter", "LabProtocol", "input",
                 "output")


def ro_crate_11_context() -> dict:
    """The RO-Crate 1.1 JSON-LD context, from the one the ``rocrate`` package ships.

    The package ships the 1.3 context; its terms are those of 1.1 and more, and only
    the bioschemas terms changed IRI since 1.1, which are put back as 1.1 has them.
    """
    shipped = json.loads(files("rocrate").joinpath("data/ro-crate.jsonld").read_text())
    context = dict(shipped["@context"])
    for term in BIOSCHEMAS_11:
        context[term] = f"https://bioschemas.org/{term}"
    return {"@context": context}


def prime_validator_cache(cache: Path) -> Path:
    """Store the RO-Crate 1.1 context in a requests-cache database at `cache`."""
    import requests
    from requests_cache import CachedSession
    from urllib3 import HTTPResponse

    body = json.dumps(ro_crate_11_context()).encode()
    session = CachedSession(cache_name=str(cache), backend="sqlite", expire_after=-1)
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.url = CONTEXT_11
    response.request = requests.Request("GET", CONTEXT_11).prepare()
    response.headers["Content-Type"] = "application/ld+json"
    response.encoding = "utf-8"
    response.raw = HTTPResponse(body=io.BytesIO(body), headers=dict(response.headers),
                                status=200, request_url=CONTEXT_11, preload_content=False)
    session.cache.save_response(response)
    assert session.cache.contains(url=CONTEXT_11)
    session.close()
    return cache


#: Checks skipped, each for a reason the profiles themselves give.
SKIPPED = {
    # ProcRC asks every SoftwareSourceCode/ComputationalWorkflow to have an absolute
    # http(s) @id, while Workflow RO-Crate (which the Workflow Run Crate builds on)
    # requires the main workflow to be a File inside the crate, whose @id is relative.
    "process-run-crate-0.5_5.1": "main workflow is a data entity of the crate",
}


def validate(bundle: Path, profile: str, cache: Path, out: Path) -> dict:
    """Run the ``rocrate-validator`` command on `bundle` offline; return its JSON report."""
    validator = Path(sys.executable).parent / "rocrate-validator"
    proc = subprocess.run(
        [str(validator), "validate", "--offline", "--cache-path", str(cache),
         "--profile-identifier", profile, "--requirement-severity", "RECOMMENDED",
         "--no-paging", "--output-format", "json", "--output-file", str(out),
         *(a for check in SKIPPED for a in ("--skip-checks", check)), str(bundle)],
        capture_output=True, text=True, check=False, timeout=600)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def declared_profiles(bundle: Path) -> set[str]:
    """The validator's identifiers of every profile the crate declares."""
    graph = {e["@id"]: e for e in json.loads(
        (bundle / "ro-crate-metadata.json").read_text())["@graph"]}
    ids = set()
    for holder in ("./", "ro-crate-metadata.json"):
        conforms = graph[holder].get("conformsTo", [])
        for item in conforms if isinstance(conforms, list) else [conforms]:
            ids.add(item["@id"])
    names = {
        "https://w3id.org/ro/crate/1.1": "ro-crate-1.1",
        "https://w3id.org/ro/wfrun/process/0.5": "process-run-crate-0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5": "workflow-run-crate-0.5",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "workflow-ro-crate-1.0",
    }
    unknown = ids - names.keys()
    assert not unknown, f"profiles the test does not know: {unknown}"
    return {names[i] for i in ids}


@pytest.fixture(scope="module")
def bundle(recorded_hrc_run, tmp_path_factory):
    """A fresh bundle of the recorded HRC run (simulated data), published by an
    organization that says who it is."""
    from acsprov.publish import make_bundle

    mp = pytest.MonkeyPatch()
    mp.setenv("ACSPROV_ORGANIZATION", "Example Observatory")
    mp.setenv("ACSPROV_ORGANIZATION_URL", "https://observatory.example.org/")
    try:
        return make_bundle(recorded_hrc_run.root, tmp_path_factory.mktemp("crate") / "b",
                           say=lambda m: None)
    finally:
        mp.undo()


def test_the_validator_passes_every_declared_profile_offline(bundle, tmp_path):
    cache = prime_validator_cache(tmp_path / "http-cache")
    profiles = declared_profiles(bundle)
    assert profiles == {"ro-crate-1.1", "process-run-crate-0.5", "workflow-run-crate-0.5",
                        "workflow-ro-crate-1.0"}
    summary = {}
    for profile in sorted(profiles):
        report = validate(bundle, profile, cache, tmp_path / f"{profile}.json")
        stats = report["statistics"]
        issues = [(i["severity"], i["check"]["identifier"], i["message"])
                  for i in report["issues"]]
        assert report["passed"], f"{profile}: {issues}"
        assert not issues
        assert stats["total_failed_checks"] == 0
        assert report["validation_settings"]["requirement_severity"] == "RECOMMENDED"
        assert report["validation_settings"]["offline"] is True
        # both levels were checked, not only the required one
        assert stats["total_checks_by_severity"]["REQUIRED"] > 0
        assert stats["total_checks_by_severity"]["RECOMMENDED"] > 0
        summary[profile] = (stats["total_passed_checks"], stats["total_checks"])
    print("rocrate-validator:", summary)


def test_the_validator_catches_a_crate_without_license(bundle, tmp_path):
    """The same run finds what the profiles require: the check is not vacuous."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    metadata = broken / "ro-crate-metadata.json"
    data = json.loads(metadata.read_text())
    for entity in data["@graph"]:
        if entity["@id"] == "./":
            del entity["license"]
    metadata.write_text(json.dumps(data))
    report = validate(broken, "ro-crate-1.1", prime_validator_cache(tmp_path / "c"),
                      tmp_path / "r.json")
    assert not report["passed"]
    assert any(i["severity"] == "REQUIRED" and "license" in i["message"].lower()
               for i in report["issues"])


def test_the_rocrate_library_loads_the_bundle(bundle):
    from rocrate.rocrate import ROCrate

    crate = ROCrate(bundle)
    assert crate.version == "1.1"
    workflow = crate.mainEntity
    assert workflow.id == "recipe.yaml"
    assert "ComputationalWorkflow" in workflow.type
    assert crate.root_dataset["license"].id.startswith("https://creativecommons.org/")
    runs = [e for e in crate.get_entities() if e.type == "CreateAction"
            and e.get("instrument") is workflow]
    assert len(runs) == 1
    products = {e.id for e in crate.data_entities}
    assert "data/example/j8is01j2q_flt.fits" in products
    calacs = [e for e in crate.get_entities() if e.type == "CreateAction"
              and "calacs" in str(e.get("name"))]
    assert calacs and all(a.get("result") for a in calacs)
    assert calacs[0]["instrument"]["url"]


def test_the_crate_says_the_data_were_simulated(bundle):
    from rocrate.rocrate import ROCrate

    crate = ROCrate(bundle)
    assert crate.root_dataset["description"].startswith("SIMULATED DATA")
    assert "simulated data" in crate.root_dataset["keywords"]
    readme = (bundle / "README.md").read_text()
    assert "Simulated data" in readme
    flt = crate.get("data/example/j8is01j2q_flt.fits")
    assert "simulated" in flt["description"].lower()
