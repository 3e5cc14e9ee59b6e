"""ACS Data Handbook 3.5.2, Examples 2, 3 and 4, end to end through the recipes.

Each test runs a shipped recipe on simulated data with the native engine
(``ACSPROV_ENGINE=native``) and checks what calacs would have made: the product
files and their extensions, the switches (COMPLETE where a step ran, OMIT where the
recipe turned it off), the trailers, and that PCTECORR=OMIT gave no ``_flc``.
Examples 2 and 4 are full WFC frames (slow); Example 3 is HRC and fast.  Example 1
(a full-frame CTE correction) is left to the engine's own tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from acsprov.recipe import recipe_dir
from acsprov.reprocess import reprocess

STEPS_DONE = ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "PHOTCORR")


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setenv("ACSPROV_ENGINE", "native")


def _run(recipe: str, tmp_path: Path, crds_cache: Path, *, only: str | None = None) -> Path:
    """Reprocess `recipe` (only its run `only`, if given); return the run's directory."""
    name: str = recipe
    if only is not None:
        data = yaml.safe_load((recipe_dir() / f"{recipe}.yaml").read_text())
        data["runs"] = [r for r in data["runs"] if r["name"] == only]
        path = tmp_path / f"{recipe}.yaml"
        path.write_text(yaml.safe_dump(data))
        name = str(path)
    result = reprocess(name, workdir=tmp_path / "work", crds_path=crds_cache,
                       source="simulate", datalad=False, say=lambda message: None)
    run = only or result.recipe.runs[0].name
    return result.root / run


def _names(d: Path, suffix: str) -> list[str]:
    return sorted(p.name for p in d.glob(f"*{suffix}"))


def _extensions(path: Path) -> list[tuple[str, int]]:
    with fits.open(path) as hdul:
        return [(h.name, h.ver) for h in hdul]


def _check_calibrated(path: Path, nchips: int) -> fits.Header:
    hdr = fits.getheader(path)
    assert all(hdr[k] == "COMPLETE" for k in STEPS_DONE), path.name
    assert hdr["PCTECORR"] == "OMIT" and hdr["FILENAME"] == path.name
    expected = [("PRIMARY", 1)] + [(e, v) for v in range(1, nchips + 1)
                                   for e in ("SCI", "ERR", "DQ")]
    assert _extensions(path) == expected
    return hdr


def test_example3_merged_hrc_repeats(tmp_path, crds_cache, native):
    run = _run("j8is01merged", tmp_path, crds_cache)
    members = ["j8is01j2q", "j8is01j3q", "j8is01j8q", "j8is01j9q"]
    assert _names(run, "_flt.fits") == [f"{m}_flt.fits" for m in members]
    assert _names(run, "_crj.fits") == ["j8is01xx1_crj.fits"]
    assert _names(run, "_flc.fits") == [] and _names(run, "_crc.fits") == []
    assert not list(run.glob("*_tmp.fits"))
    assert _names(run, ".tra") == sorted([f"{m}.tra" for m in members]
                                         + ["j8is01xx1.tra", "merged.tra"])
    for m in members:
        _check_calibrated(run / f"{m}_flt.fits", 1)
    crj = _check_calibrated(run / "j8is01xx1_crj.fits", 1)
    assert crj["CRCORR"] == "COMPLETE" and crj["ROOTNAME"] == "J8IS01XX1"
    one = fits.getheader(run / "j8is01j2q_flt.fits")["EXPTIME"]
    assert crj["EXPTIME"] == pytest.approx(4 * one)
    assert fits.getheader(run / "j8is01xx1_crj.fits", 1)["NCOMBINE"] == 4
    with fits.open(run / "merged_asn.fits") as hdul:
        assert hdul[0].header["ASN_PROD"] is True
        assert hdul[1].data["MEMTYPE"][-1].strip() == "PROD_CRJ"  # left as the user wrote it
        assert bool(hdul[1].data["MEMPRSNT"][-1])
    text = (run / "merged.tra").read_text()
    assert "MEMTYPE PROD_CRJ in row 5 was INVALID" in text
    assert "No DTH product name specified. No product created." in text


@pytest.mark.slow
def test_example2_cr_split_with_my_bias(tmp_path, crds_cache, native):
    run = _run("jd1y04010", tmp_path, crds_cache, only="example2")
    assert _names(run, "_flt.fits") == ["jd1y04rlq_flt.fits", "jd1y04rnq_flt.fits"]
    assert _names(run, "_crj.fits") == ["jd1y04011_crj.fits"]
    assert _names(run, "_flc.fits") == [] and _names(run, "_crc.fits") == []
    assert _names(run, ".tra") == ["jd1y04010.tra", "jd1y04011.tra", "jd1y04rlq.tra",
                                   "jd1y04rnq.tra"]
    for name in ("jd1y04rlq_flt.fits", "jd1y04rnq_flt.fits", "jd1y04011_crj.fits"):
        hdr = _check_calibrated(run / name, 2)
        assert hdr["BIASFILE"] == "mybias.fits"
        assert "mybias.fits" in "\n".join(str(h) for h in hdr["HISTORY"])
    assert fits.getheader(run / "jd1y04011_crj.fits")["CRCORR"] == "COMPLETE"
    assert "BIASFILE mybias.fits" in (run / "jd1y04rlq.tra").read_text()
    dq = fits.getdata(run / "jd1y04rnq_flt.fits", "DQ")
    assert (dq & 8192).any()  # ACSREJ's rejections reach the members' _flt


@pytest.mark.slow
def test_example4_dither_with_my_dark(tmp_path, crds_cache, native):
    run = _run("j8e654010", tmp_path, crds_cache)
    assert _names(run, "_flt.fits") == ["j8e654c0q_flt.fits", "j8e654c4q_flt.fits"]
    assert _names(run, "_crj.fits") == [] and _names(run, "_flc.fits") == []
    assert _names(run, ".tra") == ["j8e654010.tra", "j8e654c0q.tra", "j8e654c4q.tra"]
    for name in ("j8e654c0q_flt.fits", "j8e654c4q_flt.fits"):
        hdr = fits.getheader(run / name)
        assert all(hdr[k] == "COMPLETE" for k in STEPS_DONE), name
        assert hdr["DARKFILE"] == "mydark.fits" and hdr["CRCORR"] == "OMIT"
        assert _extensions(run / name)[:7] == [("PRIMARY", 1)] + [
            (e, v) for v in (1, 2) for e in ("SCI", "ERR", "DQ")]
        assert not (fits.getdata(run / name, "DQ") & 8192).any()
        # updatewcs then AstroDrizzle: distortion in the WCS, cosmic rays flagged
        assert fits.getheader(run / name, 1)["CTYPE1"] == "RA---TAN-SIP"
        assert (fits.getdata(run / name, "DQ") & 4096).any()
    assert fits.getheader(run / "j8e654010_asn.fits")["ASN_PROD"] is True
    assert "ACSDTH" in (run / "j8e654010.tra").read_text()
    _check_drizzled(run, crds_cache)


def _check_drizzled(run: Path, crds_cache: Path) -> None:
    """Example 4's drizzle step: the pair aligned, lineage back to raw and references."""
    import numpy as np

    from acsprov.provenance.query import lineage, render_tree
    from acsprov.simulate.datasets import get_dataset
    from acsprov.simulate.geometry import raw_layout
    from acsprov.simulate.raw import scene_rate

    drz = run / "j8e654010_drz.fits"
    assert [h for h, _ in _extensions(drz)][:4] == ["PRIMARY", "SCI", "WHT", "CTX"]
    # aligned: sources (from the simulator's noiseless scene) are flagged as cosmic
    # rays no more often than the sky is; a misregistration flags their cores
    spec = get_dataset("j8e654010")
    for member in spec.members:
        flt = run / f"{member.rootname.lower()}_flt.fits"
        for chip in raw_layout("WFC").chips:
            scene = scene_rate(spec, member, chip, seed=1729)
            source = scene > np.percentile(scene, 99.5)
            cr = (fits.getdata(flt, ("DQ", chip.extver)) & 4096) > 0
            assert cr[source].mean() < 2 * cr.mean() + 0.002, (flt.name, chip.extver)
    tree = render_tree(lineage(drz))
    assert "cal_fits/j8e654c0q_raw.fits" in tree and "cal_fits/j8e654c4q_raw.fits" in tree
    for ref in ("mydark.fits", "jref$"):
        assert ref in tree
    for keyword in ("idctab", "biasfile", "pfltfile"):
        assert keyword in tree.lower()


def test_example3_lineage_runs_through_deleted_temporaries(native, tmp_path, crds_cache):
    """Issue: the lineage of an association product shows each member's _blv_tmp and
    the _crj_tmp although calacs deleted them, and every header edit before it."""
    from acsprov.provenance.query import lineage

    result = reprocess("j8is01merged", workdir=tmp_path / "work", crds_path=crds_cache,
                       source="simulate", say=lambda message: None)
    crj = result.root / "example3" / "j8is01xx1_crj.fits"
    assert not list(crj.parent.glob("*_tmp.fits"))

    def walk(node, depth=0):
        yield node, depth
        for child in node.inputs:
            yield from walk(child, depth + 1)

    nodes = list(walk(lineage(crj)))
    paths = [n.entity.get("acsprov:path") for n, _ in nodes]
    assert paths[1] == "example3/j8is01xx1_crj_tmp.fits"
    for member in ("j8is01j2q", "j8is01j3q", "j8is01j8q", "j8is01j9q"):
        assert f"example3/{member}_blv_tmp.fits" in paths
        assert f"cal_fits/{member}_raw.fits" in paths  # back to what the archive served
    deleted = [n for n, _ in nodes if n.entity.get("acsprov:deleted") == "True"]
    assert len({n.entity["acsprov:path"] for n in deleted}) == 5
    kinds = {n.activity.get("prov:type", {}).get("$") for n, _ in nodes if n.activity}
    assert {"acsprov:obtain", "acsprov:copy", "acsprov:bestrefs", "acsprov:calacs"} <= kinds
    references = {n.entity["acsprov:keyword"] for n, _ in nodes
                  if n.entity.get("prov:type", {}).get("$") == "acsprov:ReferenceFile"}
    assert {"BIASFILE", "DARKFILE", "PFLTFILE", "CRREJTAB", "CCDTAB", "BPIXTAB"} <= references


@pytest.fixture(scope="module")
def example5(tmp_path_factory, crds_cache):
    """Example 5 run once (native engine) for the tests below; read only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACSPROV_ENGINE", "native")
        return reprocess("jd5702jpq", workdir=tmp_path_factory.mktemp("ex5") / "work",
                         crds_path=crds_cache, source="simulate", say=lambda message: None)


def test_example5_destripe_with_cte_and_updatewcs(example5):
    """Example 5: destriped _flt and _flc of the WFC1B-1K subarray, WCS updated, and the
    PCTECORR change acs_destripe_plus makes silently is recorded."""
    import json

    result = example5
    run = result.root / "example5"
    assert _names(run, "_fl?.fits") == ["jd5702jpq_flc.fits", "jd5702jpq_flt.fits"]
    flc = fits.getheader(run / "jd5702jpq_flc.fits")
    assert flc["PCTECORR"] == "COMPLETE" and flc["CTE_NAME"] == "Par/Serial PixelCTE 2023"
    assert fits.getheader(run / "jd5702jpq_flt.fits")["PCTECORR"] == "PERFORM"
    sci = fits.getheader(run / "jd5702jpq_flc.fits", ("SCI", 1))
    assert sci["WCSNAME"].startswith("IDC_") and "A_ORDER" in sci
    assert fits.getdata(run / "jd5702jpq_flc.fits", ("SCI", 1)).shape == (1024, 2048)
    doc = json.loads(result.document.read_text())
    destripe = next(a for a in doc["activity"].values()
                    if a["prov:type"]["$"] == "acsprov:destripe")
    params = json.loads(destripe["acsprov:destripe_parameters"])
    assert params["cte_correct"] is True and params["stat"] == "pmode1"
    # the step's own parameters stay what the recipe gave (an audit re-runs them)
    assert json.loads(destripe["acsprov:parameters"]) == {"cte": True,
                                                          "file": "jd5702jpq_raw.fits"}
    # the raw file already says PERFORM (the recipe set it), so nothing was changed
    # silently here; a raw with PCTECORR=OMIT is the case that records a change
    assert json.loads(destripe["acsprov:header_changes"]) == []


def test_example5_can_be_audited_and_published(example5, crds_cache, tmp_path):
    """The destripe step's recorded parameters are the step's own, so an audit can
    re-run it and a bundle can rebuild the recipe."""
    from acsprov.cli import main
    from acsprov.recipe import load_recipe

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACSPROV_ENGINE", "native")
        assert main(["audit", str(example5.root), "--crds-path", str(crds_cache),
                     "--report", str(tmp_path / "report")]) == 0
    assert main(["publish", str(example5.root), "--out", str(tmp_path / "bundle")]) == 0
    assert main(["publish", "--check", str(tmp_path / "bundle")]) == 0
    rebuilt = load_recipe(tmp_path / "bundle" / "recipe.yaml")
    assert rebuilt.runs[0].steps == load_recipe("jd5702jpq").runs[0].steps
