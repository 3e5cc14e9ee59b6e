"""Running recipes end to end on simulated HRC data: obtain, edit, bestrefs, recorded."""

from __future__ import annotations

import json
import subprocess

import pytest
from astropy.io import fits

from acsprov.asn import read_asn
from acsprov.errors import RecipeError
from acsprov.reprocess import reprocess

RECIPE = """
name: hrcdemo
title: HRC repeat pair with a user dark
source: simulate
datasets: [j8is01020]
runs:
  - name: demo
    steps:
      - copy: {files: [j8is01020_asn.fits, j8is01j2q_raw.fits, j8is01j3q_raw.fits]}
      - set_header: {files: ["*_raw.fits"], set: {DARKCORR: OMIT, BIASFILE: "N/A"}}
      - bestrefs: {files: ["*_raw.fits"]}
      - copy_reference: {keyword: BIASFILE, header_of: j8is01j2q_raw.fits, to: mybias.fits}
      - set_header: {files: ["*_raw.fits"], set: {BIASFILE: mybias.fits}}
"""


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def demo(tmp_path, crds_cache):
    recipe = tmp_path / "hrcdemo.yaml"
    recipe.write_text(RECIPE)
    said: list[str] = []
    result = reprocess(str(recipe), workdir=tmp_path / "work", crds_path=crds_cache,
                       say=said.append)
    return result, said


def test_recipe_steps_run_and_are_committed(demo):
    result, said = demo
    root = result.root
    assert any("SIMULATED j8is01020" in line for line in said)
    raw = root / "demo" / "j8is01j2q_raw.fits"
    hdr = fits.getheader(raw)
    assert hdr["BIASFILE"] == "mybias.fits"
    assert hdr["DARKCORR"] == "OMIT"
    assert hdr["SIMULATE"] is True
    # bestrefs refilled the blanked BIASFILE from the local context before the edit
    assert (root / "demo" / "mybias.fits").is_file()
    subjects = _git(root, "log", "--format=%s").splitlines()
    actions = [s.split("] ", 1)[1].split(":")[0] for s in subjects
               if s.startswith("[DATALAD RUNCMD]")]
    assert actions == ["set_header", "copy_reference", "bestrefs", "set_header", "copy", "obtain"]
    # each header edit of the raw file is in its history
    history = _git(root, "log", "--format=%s", "--", "demo/j8is01j2q_raw.fits").splitlines()
    assert [h.split("] ", 1)[1].split(":")[0] for h in history] == [
        "set_header", "bestrefs", "set_header", "copy"]
    _git(root, "annex", "fsck", "--fast", "--quiet")


def test_prov_document_lists_edits_and_references(demo):
    result, _ = demo
    doc = json.loads(result.document.read_text())
    activities = list(doc["activity"].values())
    kinds = [a["prov:type"]["$"].split(":")[1] for a in activities]
    assert kinds.count("set_header") == 2 and "bestrefs" in kinds
    bestrefs = next(a for a in activities if a["prov:type"]["$"] == "acsprov:bestrefs")
    assert bestrefs["acsprov:crds_context"] == "hst_9001.pmap"
    changes = json.loads(bestrefs["acsprov:reference_changes"])
    assert changes["j8is01j2q_raw.fits"]["BIASFILE"][0] == "N/A"
    references = [e for e in doc["entity"].values()
                  if e.get("acsprov:path", "").startswith("jref$")]
    assert any(e["acsprov:path"].endswith("_bia.fits") for e in references)
    for ref in references:
        assert len(ref["acsprov:sha256"]) == 64


def test_rerun_of_a_header_edit_reproduces_it(demo):
    result, _ = demo
    root = result.root
    commit = _git(root, "log", "--format=%H", "--grep", "copy_reference", "-1").strip()
    edit = _git(root, "rev-list", "-1", f"{commit}..HEAD", "--grep", "set_header").strip()
    before = fits.getheader(root / "demo" / "j8is01j3q_raw.fits")["BIASFILE"]
    proc = subprocess.run(["datalad", "rerun", edit], cwd=root, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert fits.getheader(root / "demo" / "j8is01j3q_raw.fits")["BIASFILE"] == before


def test_merge_asn_step(tmp_path, crds_cache):
    recipe = tmp_path / "merge.yaml"
    recipe.write_text("""
name: mergedemo
source: simulate
datasets: [j8is01020, j8is01040]
runs:
  - name: m
    steps:
      - copy: {files: [j8is01020_asn.fits, j8is01040_asn.fits]}
      - merge_asn:
          tables: [j8is01020_asn.fits, j8is01040_asn.fits]
          rows: 2
          add_row: [J8IS01xx1, PROD_CRJ, "yes"]
          to: merged_asn.fits
""")
    result = reprocess(str(recipe), workdir=tmp_path / "w", crds_path=crds_cache,
                       datalad=False, say=lambda m: None)
    asn = read_asn(result.root / "m" / "merged_asn.fits")
    assert [m.name for m in asn.exposures] == ["j8is01j2q", "j8is01j3q", "j8is01j8q",
                                               "j8is01j9q"]
    assert [(p.name, p.memtype) for p in asn.products] == [("j8is01xx1", "PROD-CRJ")]


def test_recipe_is_validated_before_anything_runs(tmp_path, crds_cache):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(RECIPE.replace("DARKCORR: OMIT", "DARKCORR: SOMETIMES"))
    with pytest.raises(RecipeError, match="DARKCORR='SOMETIMES'"):
        reprocess(str(recipe), workdir=tmp_path / "work", crds_path=crds_cache)
    assert not (tmp_path / "work").exists()


def test_datalad_rerun_of_calacs_reproduces_the_products(tmp_path, crds_cache, monkeypatch):
    """A calacs commit re-run by `datalad rerun` gives FITS-equal products."""
    import shutil

    monkeypatch.setenv("ACSPROV_ENGINE", "native")
    result = reprocess("j8is01merged", workdir=tmp_path / "work", crds_path=crds_cache,
                       source="simulate", say=lambda m: None)
    root = result.root
    run = root / "example3"
    keep = tmp_path / "first"
    keep.mkdir()
    products = sorted(run.glob("*_fl?.fits")) + sorted(run.glob("*_crj.fits"))
    assert len(products) == 5
    for path in products:
        shutil.copyfile(path, keep / path.name)
    commit = _git(root, "log", "--format=%H", "--grep", "calacs: example3", "-1").strip()
    proc = subprocess.run(["datalad", "rerun", commit], cwd=root, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _git(root, "log", "-1", "--format=%s").startswith("[DATALAD RUNCMD]")
    ignore = ["DATE", "IRAF-TLM", "PROVRUN", "PROVACT", "PROVDOC", "HISTORY"]
    for path in products:
        diff = fits.FITSDiff(str(keep / path.name), str(path), ignore_keywords=ignore)
        assert diff.identical, diff.report()
