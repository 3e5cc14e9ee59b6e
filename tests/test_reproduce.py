"""acsprov reproduce: a published bundle alone re-derives its products, or says why not.

The suite reproduces a bundle of the small HRC run (conftest) and of the drizzled HRC
pair; the full-frame jd1y04010 bundle is reproduced in the slow test at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from helpers import make_removable

from acsprov.audit.bundle import recorded_inputs, reproduce_bundle
from acsprov.cli import main
from acsprov.publish import make_bundle

QUIET = {"say": lambda m: None}


@pytest.fixture(scope="module")
def bundle(recorded_hrc_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    return make_bundle(recorded_hrc_run.root, out, **QUIET)


def _copy(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy, symlinks=True)
    return copy


def test_a_fresh_bundle_is_reproduced(bundle, crds_cache, tmp_path, capsys):
    out = tmp_path / "repro"
    code = main(["reproduce", str(bundle), "--out", str(out), "--crds-path", str(crds_cache)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "reproduce PASSED" in printed
    report = json.loads((out / "report" / "reproduce.json").read_text())
    names = {p["name"] for p in report["products"]}
    assert "example/j8is01j2q_flt.fits" in names
    kinds = {i["kind"] for i in report["inputs"]}
    assert kinds == {"archive file", "reference file"}
    assert all(i["status"] == "ok" for i in report["inputs"])
    # the re-derived product really was made again, from the bundle's own raw file
    rerun = out / "rerun" / "hrcbias" / "example" / "j8is01j2q_flt.fits"
    assert rerun.is_file()
    assert np.array_equal(fits.getdata(rerun, "SCI"),
                          fits.getdata(bundle / "data" / "example" / "j8is01j2q_flt.fits",
                                       "SCI"))


def test_a_bundle_with_one_changed_product_fails_naming_it(bundle, crds_cache, tmp_path,
                                                          capsys):
    copy = _copy(bundle, tmp_path)
    flt = copy / "data" / "example" / "j8is01j2q_flt.fits"
    with fits.open(flt, mode="update") as hdul:
        hdul["SCI"].data[100, 200] += 50.0
    code = main(["reproduce", str(copy), "--out", str(tmp_path / "r"),
                 "--crds-path", str(crds_cache)])
    captured = capsys.readouterr()
    assert code == 7
    assert "reproduce FAILED: 2 of 3 products" in captured.out
    # 1-based FITS pixel coordinates, as the audit reports them
    assert "example/j8is01j2q_flt.fits: SCI,1 1 px in x 201-201 y 101-101" in captured.out
    report = json.loads((tmp_path / "r" / "report" / "reproduce.json").read_text())
    bad = [p["name"] for p in report["products"] if not p["identical"]]
    assert bad == ["example/j8is01j2q_flt.fits"]


def test_missing_recorded_inputs_are_named(bundle, recorded_hrc_run, crds_cache, tmp_path):
    copy = _copy(bundle, tmp_path)
    objects = copy / "dataset.git" / "annex" / "objects"
    key = subprocess.run(["git", "-C", str(copy / "dataset.git"), "annex", "lookupkey",
                          "--ref", "HEAD:cal_fits/j8is01j2q_raw.fits"],
                         capture_output=True, text=True, check=False).stdout.strip()
    if not key:  # older git-annex: find the object by the key in the pointer file
        pointer = subprocess.run(["git", "-C", str(copy / "dataset.git"), "show",
                                  "HEAD:cal_fits/j8is01j2q_raw.fits"],
                                 capture_output=True, text=True, check=True).stdout
        key = pointer.strip().rsplit("/", 1)[-1]
    found = [p for p in objects.rglob(key) if p.is_dir()]
    assert found, key
    for path in found:
        path.chmod(0o755)
        shutil.rmtree(path)
    # and one recorded reference file is not in the CRDS cache (a linked copy)
    from acsprov.audit import load_run

    inputs = recorded_inputs(load_run(recorded_hrc_run.root))
    reference = sorted(p for p in inputs if p.startswith("jref$"))[0]
    cache = tmp_path / "crds"
    shutil.copytree(crds_cache, cache, copy_function=os.symlink)
    (cache / "references" / "hst" / reference.removeprefix("jref$")).unlink()
    result = reproduce_bundle(copy, tmp_path / "r", crds_path=cache, **QUIET)
    assert not result.passed and not result.products  # nothing was re-run
    missing = {i["path"] for i in result.inputs if i["status"] == "missing"}
    assert missing == {"cal_fits/j8is01j2q_raw.fits", reference}
    assert "cal_fits/j8is01j2q_raw.fits (missing)" in result.summary()
    assert f"{reference} (missing)" in result.summary()


def test_recorded_inputs_are_archive_and_reference_files(recorded_hrc_run):
    from acsprov.audit import load_run

    inputs = recorded_inputs(load_run(recorded_hrc_run.root))
    archive = {p for p, i in inputs.items() if i["kind"] == "archive file"}
    refs = {p for p, i in inputs.items() if i["kind"] == "reference file"}
    assert "cal_fits/j8is01j2q_raw.fits" in archive
    assert refs and all(p.startswith("jref$") for p in refs)
    assert all(len(i["recorded"]) == 64 for i in inputs.values())


def test_reproduce_refuses_what_is_not_a_bundle(tmp_path, recorded_hrc_run, bundle, capsys):
    code = main(["reproduce", str(recorded_hrc_run.root), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "not an acsprov bundle" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("mine")
    code = main(["reproduce", str(bundle), "--out", str(tmp_path / "busy")])
    assert code == 2 and "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["x"]
    assert (tmp_path / "busy" / "x").read_text() == "mine"


@pytest.mark.slow
def test_a_fresh_bundle_of_jd1y04010_is_reproduced(tmp_path, crds_cache):
    """Handbook Examples 1 and 2 (full frames): the acceptance case."""
    from acsprov.reprocess import reprocess

    run = reprocess("jd1y04010", workdir=tmp_path / "work", crds_path=crds_cache,
                    source="simulate", **QUIET)
    published = make_bundle(run.root, tmp_path / "bundle", **QUIET)
    # the bundle alone is what a reader receives (and the run's GB need not stay on disk)
    make_removable(run.root)
    shutil.rmtree(run.root)
    result = reproduce_bundle(published, tmp_path / "repro", crds_path=crds_cache, **QUIET)
    assert result.passed, result.summary()
    names = {p.name for p in result.products}
    assert {"example1/jd1y04rlq_flc.fits", "example2/jd1y04011_crj.fits"} <= names
