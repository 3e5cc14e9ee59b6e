"""The drizzle step: AstroDrizzle on a run's _flt files, offline, recorded.

A small HRC recipe (two repeat exposures of j8is01020, calibrated, WCS updated,
drizzled) runs once per module; the full-frame Example 4 dither pair is in
test_examples.py (slow).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner

from acsprov.actions.drizzle.astrodrizzle import drizzle, product_names, validate_parameters
from acsprov.cli import cli
from acsprov.errors import BadInputError, RecipeError
from acsprov.provenance.query import lineage, render_tree
from acsprov.recipe import parse_step

HRC_DRIZZLE = """
name: hrcdrizzle
title: "two HRC exposures calibrated, WCS updated and drizzled"
source: simulate
datasets: [j8is01020]
runs:
  - name: pair
    steps:
      - copy: {files: [j8is01j2q_raw.fits, j8is01j3q_raw.fits]}
      - bestrefs: {files: ["*_raw.fits"]}
      - calacs: {input: j8is01j2q_raw.fits, options: {engine: native}}
      - calacs: {input: j8is01j3q_raw.fits, options: {engine: native}}
      - updatewcs: {files: ["*_flt.fits"]}
      - drizzle:
          input: ["*_flt.fits"]
          output: hrcpair
          parameters: {final_pixfrac: 0.8, driz_cr_snr: "3.5 3.0"}
"""


@pytest.fixture(scope="module")
def drizzled(tmp_path_factory, crds_cache):
    from acsprov.reprocess import reprocess

    top = tmp_path_factory.mktemp("drizzle")
    recipe = top / "hrcdrizzle.yaml"
    recipe.write_text(HRC_DRIZZLE)
    return reprocess(str(recipe), workdir=top / "work", crds_path=crds_cache,
                     say=lambda m: None)


def _activity(result, action):
    doc = json.loads(result.document.read_text())
    return next(a for a in doc["activity"].values()
                if str(a.get("prov:type", {}).get("$", "")).endswith(action))


def test_drizzle_makes_the_drz_and_records_its_configuration(drizzled):
    run = drizzled.root / "pair"
    drz = run / "hrcpair_drz.fits"
    with fits.open(drz) as hdul:
        assert [h.name for h in hdul][:4] == ["PRIMARY", "SCI", "WHT", "CTX"]
        assert hdul["SCI"].data.shape[0] > 1000  # the HRC frame, distortion-corrected
    act = _activity(drizzled, "drizzle")
    config = json.loads(act["acsprov:configuration"])
    assert config["updatewcs"] is False and config["mdriztab"] is False
    assert config["STEP 7: DRIZZLE FINAL COMBINED IMAGE"]["final_pixfrac"] == 0.8
    assert config["STEP 6: REMOVE COSMIC RAYS WITH DERIV, DRIZ_CR"]["driz_cr"] is True
    import drizzlepac

    assert act["acsprov:drizzlepac_version"] == drizzlepac.__version__
    # AstroDrizzle flagged cosmic rays in its inputs; the new versions are recorded
    assert (fits.getdata(run / "j8is01j2q_flt.fits", "DQ") & 4096).any()
    assert sorted(json.loads(act["acsprov:updated_inputs"])) == [
        "j8is01j2q_flt.fits", "j8is01j3q_flt.fits"]
    assert not list(run.glob(".drizzle.*"))  # no scratch left behind
    assert not list(run.glob("*_single_sci.fits")) and not list(run.glob("*_med.fits"))


def _pixel_area(wcs: WCS, x: float, y: float) -> float:
    """Area (arcsec^2) on the sky of the pixel at (x, y), distortion included."""
    (ra0, dec0), (ra1, dec1), (ra2, dec2) = wcs.all_pix2world(
        [[x, y], [x + 1, y], [x, y + 1]], 0)
    cos = np.cos(np.radians(dec0))
    ax, ay = (ra1 - ra0) * cos * 3600, (dec1 - dec0) * 3600
    bx, by = (ra2 - ra0) * cos * 3600, (dec2 - dec0) * 3600
    return abs(ax * by - ay * bx)


def test_drizzled_flux_matches_the_exposures(drizzled):
    """A bright source's count rate in the drz equals its rate in the _flt, sky
    subtracted, times the pixel-area ratio (drizzle's output pixel is IDCSCALE square;
    the _flt pixel covers what its WCS says): an expectation from the inputs alone."""
    run = drizzled.root / "pair"
    with fits.open(run / "hrcpair_drz.fits") as drz, \
            fits.open(run / "j8is01j2q_flt.fits") as flt:
        sci, dq = flt["SCI"].data.astype(float), flt["DQ"].data
        sky = flt["SCI"].header["MDRIZSKY"]
        exptime = flt[0].header["EXPTIME"]
        clean = np.where(dq == 0, sci - sky, 0.0)
        clean[:20], clean[-20:], clean[:, :20], clean[:, -20:] = 0, 0, 0, 0
        y, x = np.unravel_index(np.argmax(clean), clean.shape)
        wflt = WCS(flt["SCI"].header, flt)
        area = _pixel_area(wflt, x, y) / flt["SCI"].header["IDCSCALE"] ** 2
        flux_flt = (sci[y - 6:y + 7, x - 6:x + 7] - sky).sum() / exptime * area
        sky_coord = wflt.all_pix2world([[x, y]], 0)
        wdrz = WCS(drz["SCI"].header)
        dx, dy = np.round(wdrz.all_world2pix(sky_coord, 0)[0]).astype(int)
        flux_drz = drz["SCI"].data[dy - 6:dy + 7, dx - 6:dx + 7].sum()
    assert flux_flt > 50  # a real source, not noise
    assert flux_drz == pytest.approx(flux_flt, rel=0.05)


def test_prov_show_of_the_drz_reaches_raw_and_reference_files(drizzled):
    drz = drizzled.root / "pair" / "hrcpair_drz.fits"
    tree = render_tree(lineage(drz))
    for raw in ("cal_fits/j8is01j2q_raw.fits", "cal_fits/j8is01j3q_raw.fits"):
        assert raw in tree
    for keyword in ("IDCTAB", "BIASFILE", "DARKFILE", "PFLTFILE"):
        assert keyword.lower() in tree.lower()
    assert "drizzle" in tree and "updatewcs" in tree and "calacs" in tree
    out = CliRunner().invoke(cli, ["prov", "show", str(drz)])
    assert out.exit_code == 0 and "j8is01j3q_raw.fits" in out.output


def test_audit_covers_the_drizzled_product(drizzled, crds_cache):
    from acsprov.audit import audit_run

    result = audit_run(drizzled.root, crds_path=crds_cache, say=lambda m: None)
    names = [p.name for p in result.products]
    assert "pair/hrcpair_drz.fits" in names
    assert result.passed, result.summary()


def test_recipe_parameters_are_checked_before_anything_runs():
    step = parse_step({"drizzle": {"input": ["*_flt.fits"], "output": "x",
                                   "parameters": {"final_scale": 0.05}}})
    assert step.params["parameters"] == {"final_scale": 0.05}
    for params, message in (({"final_pixfrc": 1}, "not an AstroDrizzle parameter"),
                            ({"updatewcs": True}, "set by acsprov"),
                            ({"final_bits": [1, 2]}, "single value")):
        with pytest.raises(RecipeError, match=message):
            validate_parameters(params)
    with pytest.raises(RecipeError, match="plain file name"):
        parse_step({"drizzle": {"input": ["*_flt.fits"], "output": "../x"}})


def test_inputs_without_an_updated_wcs_are_refused(drizzled, tmp_path):
    flt = tmp_path / "j8is01j2q_flt.fits"
    with fits.open(drizzled.root / "cal_fits" / "j8is01j2q_raw.fits") as hdul:
        hdul.writeto(flt)
    before = flt.read_bytes()
    with pytest.raises(BadInputError, match="run updatewcs first"):
        drizzle([flt], "out")
    assert flt.read_bytes() == before and not list(tmp_path.glob("out*"))


def test_product_names_follow_the_inputs(tmp_path):
    assert product_names([tmp_path / "a_flt.fits"], "x") == ["x_drz.fits"]
    assert product_names([tmp_path / "a_flc.fits"], "x") == ["x_drc.fits"]
