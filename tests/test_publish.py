"""Publishable bundles: RO-Crate, checksums, PROV consistency, a clonable DataLad dataset."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from acsprov.cli import main
from acsprov.fitsutil import sha256sum
from acsprov.publish import MANIFEST, PROFILES, BundleError, check_bundle, make_bundle
from acsprov.recipe import load_recipe

PRODUCT = "example/j8is01j2q_flt.fits"


@pytest.fixture(scope="module")
def bundle(recorded_hrc_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("published") / "bundle"
    assert main(["publish", str(recorded_hrc_run.root), "--out", str(out)]) == 0
    return out


def test_bundle_passes_check(bundle, capsys):
    assert main(["publish", "--check", str(bundle)]) == 0
    assert "bundle verified" in capsys.readouterr().out


def test_bundle_holds_products_prov_recipe_environment(bundle, recorded_hrc_run):
    root = recorded_hrc_run.root
    for rel in (PRODUCT, "example/j8is01j2q_raw.fits", "example/mybias.fits"):
        assert sha256sum(bundle / "data" / rel) == sha256sum(root / rel)
    documents = sorted(p.name for p in (bundle / "prov").iterdir())
    assert {p.suffix for p in (bundle / "prov").iterdir()} >= {".json", ".provn", ".ttl",
                                                              ".svg", ".png"}
    assert documents == sorted(p.name for p in (root / "prov").iterdir())
    recipe = load_recipe(bundle / "recipe.yaml")
    assert [s.action for s in recipe.runs[0].steps] == [
        s.action for s in recorded_hrc_run.recipe.runs[0].steps]
    assert recipe.runs[0].steps == recorded_hrc_run.recipe.runs[0].steps
    environment = json.loads((bundle / "environment.json").read_text())
    assert environment["recorded"]["engines"] == ["native"]
    assert environment["recorded"]["crds_contexts"] == ["hst_9001.pmap"]
    assert any(p.startswith("astropy==") for p in environment["bundled_with"]["packages"])


def test_crate_metadata_follows_the_workflow_run_profile(bundle):
    graph = json.loads((bundle / "ro-crate-metadata.json").read_text())["@graph"]
    by_id = {e["@id"]: e for e in graph}
    root = by_id["./"]
    profiles = {c["@id"] for c in root["conformsTo"]}
    assert profiles >= set(PROFILES)
    assert any(p.startswith("https://w3id.org/workflowhub/workflow-ro-crate/") for p in profiles)
    assert root["mainEntity"] == {"@id": "recipe.yaml"}
    assert "ComputationalWorkflow" in by_id["recipe.yaml"]["@type"]
    manifest = dict(reversed(line.split("  ", 1))
                    for line in (bundle / MANIFEST).read_text().splitlines())
    for rel, sha in manifest.items():
        if rel != "ro-crate-metadata.json":
            assert by_id[rel]["sha256"] == sha, rel
    runs = [e for e in graph if e.get("@type") == "CreateAction" and e["@id"].startswith("#run")]
    assert len(runs) == 1
    assert runs[0]["instrument"] == {"@id": "recipe.yaml"}
    assert {"@id": f"data/{PRODUCT}"} in runs[0]["result"]
    steps = [by_id[a["@id"]] for a in runs[0]["hasPart"]]
    calacs = next(s for s in steps if s["name"].endswith("calacs j8is01j2q_raw.fits"))
    engine = by_id[calacs["instrument"]["@id"]]
    assert engine["name"] == "calacs (native engine)" and engine["version"]
    assert calacs["instrument"]["@id"].startswith("https://")  # software ids are URLs
    results = calacs["result"] if isinstance(calacs["result"], list) else [calacs["result"]]
    assert {"@id": f"data/{PRODUCT}"} in results
    # every action is mentioned by the root, with an agent and RO-Crate 1.1 times
    mentioned = {m["@id"] for m in root["mentions"]}
    assert {a["@id"] for a in runs[0]["hasPart"]} <= mentioned
    assert calacs["agent"]["@id"].startswith("#person-")
    assert calacs["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", calacs["endTime"])
    assert by_id["ro-crate-metadata.json"]["conformsTo"][0] == {
        "@id": "https://w3id.org/ro/crate/1.1"}
    assert root["license"]["@id"] in by_id


def test_datalad_clone_and_get_from_the_bundle(bundle, tmp_path):
    clone = tmp_path / "clone"
    proc = subprocess.run(["datalad", "clone", str(bundle / "dataset.git"), str(clone)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    # annexed (unlocked): until `datalad get`, the clone holds only a pointer file
    assert (clone / PRODUCT).read_bytes().startswith(b"/annex/objects/")
    proc = subprocess.run(["datalad", "get", PRODUCT], cwd=clone, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sha256sum(clone / PRODUCT) == sha256sum(bundle / "data" / PRODUCT)
    # getting content from the bundle leaves it verifiable
    assert check_bundle(bundle).files > 10


@pytest.mark.parametrize("target", [
    f"data/{PRODUCT}", "recipe.yaml", "ro-crate-metadata.json", MANIFEST, "prov/*.json",
    "dataset.git/objects/pack/*.pack", "dataset.git/annex/objects/**/*.fits",
])
def test_one_changed_byte_fails_the_check(bundle, tmp_path, target, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    path = next(p for p in sorted(copy.glob(target)) if p.is_file())
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["publish", "--check", str(copy)]) == 6
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("acsprov: error: ")


def test_an_added_file_fails_the_check(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    (copy / "data" / "extra.fits").write_bytes(b"x")
    with pytest.raises(BundleError, match="not in manifest"):
        check_bundle(copy)


def test_publish_refuses_bad_requests(recorded_hrc_run, bundle, tmp_path, capsys):
    with pytest.raises(BundleError, match="exists"):
        make_bundle(recorded_hrc_run.root, bundle)
    assert main(["publish", str(recorded_hrc_run.root)]) == 2
    assert main(["publish", "--check", str(tmp_path)]) == 2
    assert "not an acsprov bundle" in capsys.readouterr().err
    copy = tmp_path / "dirty" / recorded_hrc_run.root.name
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    (copy / "example" / "notes.txt").write_text("scribbles")
    with pytest.raises(BundleError, match="uncommitted changes"):
        make_bundle(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bundle_of_simulated_data_says_so(bundle):
    graph = json.loads((bundle / "ro-crate-metadata.json").read_text())["@graph"]
    by_id = {e["@id"]: e for e in graph}
    root = by_id["./"]
    assert root["name"].endswith("SIMULATED DATA")
    assert root["description"].startswith("SIMULATED DATA: the archive files of this run")
    assert "simulated data" in root["keywords"]
    assert by_id[f"data/{PRODUCT}"]["description"].endswith("(made from SIMULATED data)")
