"""Reproducibility audits: re-running a recorded run, and comparing with the archive."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from acsprov.audit import load_run
from acsprov.audit.report import validate_report
from acsprov.cli import main

PRODUCT = "example/j8is01j2q_flt.fits"


def _report(directory):
    data = json.loads((directory / "audit.json").read_text())
    validate_report(data)
    return data, (directory / "audit.html").read_text()


def _tamper_copy(root, tmp_path):
    """A copy of the recorded work directory with one SCI pixel of the _flt changed."""
    copy = tmp_path / "copy" / root.name
    shutil.copytree(root, copy, symlinks=True)
    product = copy / PRODUCT
    with fits.open(product) as hdul:
        hdul["SCI", 1].data[500, 300] += 3.0  # numpy [y, x]: FITS x=301, y=501
        hdul.writeto(tmp_path / "changed.fits")
    product.unlink()  # an annex link: replace it, never write through it
    (tmp_path / "changed.fits").rename(product)
    return copy


def test_audit_of_an_untouched_run_passes(recorded_hrc_run, tmp_path, capsys):
    root = recorded_hrc_run.root
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout
    code = main(["audit", str(root), "--report", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "audit PASSED" in out
    data, page = _report(tmp_path / "report")
    assert data["passed"] is True and data["kind"] == "rerun"
    names = {p["name"] for p in data["products"]}
    assert {PRODUCT, "example/j8is01j2q_raw.fits", "example/mybias.fits"} <= names
    assert all(p["identical"] for p in data["products"])
    assert data["engine"] == {"calacs": "native -> native"}
    kinds = {i["kind"] for i in data["inputs"]}
    assert kinds == {"archive file", "reference file"}
    assert all(i["status"] == "ok" for i in data["inputs"])
    assert any(i["path"].endswith("_bia.fits") for i in data["inputs"])
    assert "REPRODUCED" in page and "NOT REPRODUCED" not in page
    # the audit changed nothing in the work directory
    assert subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout == head
    assert not subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                              capture_output=True, text=True, check=True).stdout.strip()


def test_audit_fails_on_one_changed_pixel_and_points_at_it(recorded_hrc_run, crds_cache,
                                                             tmp_path, capsys):
    copy = _tamper_copy(recorded_hrc_run.root, tmp_path)
    code = main(["audit", str(copy), "--crds-path", str(crds_cache),
                 "--report", str(tmp_path / "report")])
    captured = capsys.readouterr()
    assert code == 7
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("acsprov: error: audit FAILED")
    assert "SCI,1 1 px in x 301-301 y 501-501" in error
    data, page = _report(tmp_path / "report")
    assert data["passed"] is False
    bad = [p for p in data["products"] if not p["identical"]]
    assert [p["name"] for p in bad] == [PRODUCT]
    extensions = {(e["extname"], e["extver"]): e for e in bad[0]["extensions"]}
    sci = extensions["SCI", 1]
    assert sci["identical"] is False
    assert sci["n_outside"] == 1
    assert sci["bbox"] == {"x0": 301, "x1": 301, "y0": 501, "y1": 501}
    assert sci["peak"] == {"x": 301, "y": 501}
    assert sci["max_abs_diff"] == pytest.approx(3.0, rel=1e-5)
    assert sci["fraction_outside"] == pytest.approx(1 / (1024 * 1024))
    assert extensions["ERR", 1]["identical"] and extensions["DQ", 1]["identical"]
    assert "NOT REPRODUCED" in page
    assert "x 301–301, y 501–501" in page
    assert page.count("data:image/png;base64,") >= 3  # one picture per product chip


def test_a_tolerance_can_accept_the_changed_pixel(recorded_hrc_run, crds_cache, tmp_path):
    copy = _tamper_copy(recorded_hrc_run.root, tmp_path)
    code = main(["audit", str(copy), "--crds-path", str(crds_cache), "--tol", "SCI=0,3.5",
                 "--report", str(tmp_path / "report")])
    assert code == 0
    data, _ = _report(tmp_path / "report")
    assert data["tolerances"]["SCI"] == {"rtol": 0.0, "atol": 3.5}


def _replace_raw(root, tmp_path, edit):
    copy = tmp_path / "copy" / root.name
    shutil.copytree(root, copy, symlinks=True)
    raw = copy / "cal_fits" / "j8is01j2q_raw.fits"
    with fits.open(raw) as hdul:
        edit(hdul)
        hdul.writeto(tmp_path / "raw.fits")
    raw.unlink()
    (tmp_path / "raw.fits").rename(raw)
    return copy


def test_changed_archive_input_fails_the_audit(recorded_hrc_run, crds_cache, tmp_path):
    def edit(hdul):
        hdul["SCI", 1].data[100:110, 200:204] += 50

    copy = _replace_raw(recorded_hrc_run.root, tmp_path, edit)
    code = main(["audit", str(copy), "--crds-path", str(crds_cache),
                 "--report", str(tmp_path / "report")])
    assert code == 7
    data, _ = _report(tmp_path / "report")
    changed = [i for i in data["inputs"] if i["status"] != "ok"]
    assert [(i["path"], i["status"]) for i in changed] == [
        ("cal_fits/j8is01j2q_raw.fits", "changed")]
    bad = {p["name"] for p in data["products"] if not p["identical"]}
    assert PRODUCT in bad


def test_a_failing_re_run_fails_the_audit_with_a_report(recorded_hrc_run, crds_cache,
                                                        tmp_path, capsys):
    def edit(hdul):
        hdul[0].header["BIASCORR"] = "OMIT"  # bestrefs then leaves no BIASFILE to copy

    copy = _replace_raw(recorded_hrc_run.root, tmp_path, edit)
    code = main(["audit", str(copy), "--crds-path", str(crds_cache),
                 "--report", str(tmp_path / "report")])
    assert code == 7
    assert "re-run failed: j8is01j2q_raw.fits: BIASFILE is N/A" in capsys.readouterr().err
    data, page = _report(tmp_path / "report")
    assert data["error"].startswith("re-run failed")
    assert "NOT REPRODUCED" in page


def test_archive_audit_reports_biasfile_and_pixel_statistics(recorded_hrc_run, tmp_path,
                                                              capsys):
    recipe = recorded_hrc_run.recipe.path
    top = recorded_hrc_run.root.parent
    code = main(["audit", "--against-archive", str(recipe), "--workdir", str(top),
                 "--report", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0
    assert "BIASFILE=mybias.fits" in out
    data, page = _report(tmp_path / "report")
    assert data["kind"] == "archive"
    assert data["labels"] == {"a": "archive", "b": "recalibrated"}
    (product,) = data["products"]
    assert product["name"] == PRODUCT
    refs = {d["keyword"]: d for d in product["reference_differences"]}
    assert refs["BIASFILE"]["b"] == "mybias.fits"
    assert refs["BIASFILE"]["a"].startswith("jref$") and refs["BIASFILE"]["a"].endswith(
        "_bia.fits")
    assert product["switch_differences"] == []  # same switches as the archive's run
    sci = next(e for e in product["extensions"] if e["extname"] == "SCI")
    with fits.open(recorded_hrc_run.root / PRODUCT) as ours, \
            fits.open(recorded_hrc_run.root / "cal_fits" / "j8is01j2q_flt.fits") as theirs:
        mine, archive = ours["SCI", 1].data, theirs["SCI", 1].data
        assert sci["stats_b"]["mean"] == pytest.approx(float(np.mean(mine)), rel=1e-5)
        assert sci["stats_a"]["mean"] == pytest.approx(float(np.mean(archive)), rel=1e-5)
        assert sci["max_abs_diff"] == pytest.approx(
            float(np.max(np.abs(mine.astype(float) - archive))), rel=1e-6)
    assert sci["n_outside"] > 0 and sci["bbox"] is not None
    assert "DIFFERS FROM THE ARCHIVE" in page and "BIASFILE" in page


def test_audit_needs_a_recorded_run(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no prov/" in err
    assert main(["audit"]) == 2
    assert main(["audit", str(tmp_path), "--tol", "SCI=big"]) == 2
    assert "EXT=RTOL,ATOL" in capsys.readouterr().err


def test_load_run_lists_actions_in_order(recorded_hrc_run):
    run = load_run(recorded_hrc_run.root)
    assert [a["action"] for a in run.activities] == [
        "obtain", "copy", "bestrefs", "copy_reference", "set_header", "calacs"]
    assert PRODUCT in run.products()


@pytest.mark.slow
def test_archive_audit_of_handbook_example2_on_full_wfc_frames(tmp_path, crds_cache,
                                                                monkeypatch):
    """Example 2 (mybias.fits, PCTECORR=OMIT) against the archive's _flt, both chips."""
    import yaml

    from acsprov.audit import audit_archive
    from acsprov.audit.report import write_report
    from acsprov.recipe import recipe_dir
    from acsprov.reprocess import reprocess

    monkeypatch.setenv("ACSPROV_ENGINE", "native")
    data = yaml.safe_load((recipe_dir() / "jd1y04010.yaml").read_text())
    data["runs"] = [r for r in data["runs"] if r["name"] == "example2"]
    recipe = tmp_path / "jd1y04010.yaml"
    recipe.write_text(yaml.safe_dump(data))
    result = reprocess(str(recipe), workdir=tmp_path / "work", crds_path=crds_cache,
                       source="simulate", datalad=False, say=lambda m: None)
    audit = audit_archive(result.root, say=lambda m: None)
    html_path, json_path = write_report(audit, tmp_path / "report")
    report = json.loads(json_path.read_text())
    assert [p["name"] for p in report["products"]] == [
        "example2/jd1y04rlq_flt.fits", "example2/jd1y04rnq_flt.fits"]
    for product in report["products"]:
        refs = {d["keyword"]: d for d in product["reference_differences"]}
        assert refs["BIASFILE"]["b"] == "mybias.fits"
        assert refs["BIASFILE"]["a"].startswith("jref$")
        chips = {e["extver"] for e in product["extensions"] if e["extname"] == "SCI"}
        assert chips == {1, 2}
        for ext in product["extensions"]:
            assert ext["stats_a"]["mean"] is not None and ext["stats_b"]["mean"] is not None
    assert "BIASFILE=mybias.fits" in audit.summary()
    assert html_path.read_text().count("data:image/png;base64,") == 4  # 2 products x 2 chips
