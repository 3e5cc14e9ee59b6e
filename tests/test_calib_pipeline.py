"""calacs's top level in the native engine: associations, trailers, temporaries, refusals.

The exposures are the tiny HRC-like raw files of :func:`test_calib_ccd.write_tiny_hrc`
(6 x 8 science pixels), copied into a repeat-obs (or CR-SPLIT, or dither) association,
so that every expectation here follows from the definitions of the products rather
than from another implementation: a ``_crj`` is the sum of its members' ``_flt``
where nothing was rejected, a rejected pixel is flagged 8192 in that member only, and
so on.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from helpers import make_asn
from test_calib_ccd import NX, NY, TRIMX, TRIMY2, _image, write_tiny_hrc
from test_calib_rej import ROW, _write_crrejtab

from acsprov.calib import calacs, fitsio
from acsprov.calib.calacs import ENGINE_NAME, ENGINE_VERSION, NativeResult, run_native
from acsprov.errors import AcsprovError, BadInputError, ReferenceFileError
from acsprov.provenance.stamp import Stamp, stamping

CR_PIXEL = (3, 4)  # trimmed (row, column) of the cosmic ray in the second member
CR_DN = 3000
SWITCHES_DONE = ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "PHOTCORR")


def _association(d: Path, *, n: int = 2, memtype: str = "EXP-RPT", product: str | None = None,
                 present: tuple[bool, ...] | None = None, switches: dict | None = None,
                 spt: bool = True, name: str = "jtst01010", refs: dict | None = None) -> Path:
    """Write `n` tiny exposures (a cosmic ray in the second), their SPTs and the table."""
    kind = memtype.split("-")[1]
    corr = {"RPT": {"RPTCORR": "PERFORM"}, "CRJ": {"CRCORR": "PERFORM"}}.get(kind, {})
    raw0 = write_tiny_hrc(d, switches={**corr, **(switches or {})},
                          refs={"CRREJTAB": "crr.fits", **(refs or {})})
    _write_crrejtab(d / "crr.fits", rows=(dict(ROW, INITGUES="min"),))  # as HRC tables
    roots = [f"jtst01a{k + 1}q" for k in range(n)]
    for k, root in enumerate(roots):
        with fits.open(raw0) as hdul:
            hdul[0].header["ROOTNAME"] = root
            hdul[0].header["IMAGETYP"] = "EXT"
            hdul[0].header["ASN_MTYP"] = memtype
            hdul[0].header["INSTRUME"] = "ACS"
            sci = hdul["SCI"].data.astype(np.int32)
            if k == 1:
                sci[CR_PIXEL[0], CR_PIXEL[1] + 2] += CR_DN  # 2 overscan columns on the left
            hdul["SCI"].data = sci.astype(np.uint16)
            hdul.writeto(d / f"{root}_raw.fits")
        if spt:
            udl = fits.ImageHDU(np.full(4, k, np.int16), name="UDL")
            fits.HDUList([fits.PrimaryHDU(), udl]).writeto(d / f"{root}_spt.fits")
    raw0.unlink()
    present = present or (True,) * n
    rows = [(r.upper(), memtype, p) for r, p in zip(roots, present, strict=True)]
    if product is None:
        product = {"RPT": "PROD-RPT", "CRJ": "PROD-CRJ"}.get(kind, "PROD-DTH")
    prodname = name[:-1] + "1" if product != "PROD-DTH" else name
    rows.append((prodname.upper(), product, True))
    return make_asn(d / f"{name}_asn.fits", rows, DETECTOR="HRC")


def _sci(path: Path) -> np.ndarray:
    return fits.getdata(path, "SCI").astype(np.float64)


def _dq(path: Path) -> np.ndarray:
    return fits.getdata(path, "DQ").astype(np.int64) & 0xFFFF


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


@pytest.fixture
def rpt(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("jref", f"{tmp_path}/")
    return _association(tmp_path)


# --------------------------------------------------------------------------- products
def test_engine_identity():
    assert ENGINE_NAME == "acsprov native calacs"
    assert "calacs 10.5.0" in ENGINE_VERSION and "acsprov" in ENGINE_VERSION


def test_rpt_association_makes_flt_crj_spt_and_trailers(rpt):
    d = rpt.parent
    result = run_native(rpt)
    assert isinstance(result, NativeResult)
    made = {p.name for p in result.products}
    assert made == {"jtst01a1q_flt.fits", "jtst01a2q_flt.fits", "jtst01011_crj.fits",
                    "jtst01011_spt.fits", "jtst01a1q.tra", "jtst01a2q.tra", "jtst01011.tra",
                    "jtst01010.tra", "jtst01010_asn.fits"}
    assert all(p.parent == d and p.exists() for p in result.products)
    assert not any(name.endswith("_tmp.fits") for name in _files(d))
    for name in ("jtst01a1q_flt.fits", "jtst01a2q_flt.fits", "jtst01011_crj.fits"):
        hdr = fits.getheader(d / name)
        assert all(hdr[k] == "COMPLETE" for k in SWITCHES_DONE), name
        assert hdr["EXPSCORR"] == "COMPLETE" and hdr["FILENAME"] == name
        assert [h.name for h in fits.open(d / name)] == ["PRIMARY", "SCI", "ERR", "DQ"]
    crj = fits.getheader(d / "jtst01011_crj.fits")
    assert crj["CRCORR"] == "COMPLETE" and crj["RPTCORR"] == "PERFORM"  # as calacs leaves it
    assert crj["ASN_MTYP"] == "PROD-RPT" and crj["ROOTNAME"] == "JTST01011"
    assert crj["EXPTIME"] == 200.0 and fits.getheader(d / "jtst01011_crj.fits", 1)["NCOMBINE"] == 2
    flt = fits.getheader(d / "jtst01a1q_flt.fits")
    assert flt["RPTCORR"] == "PERFORM" and flt["EXPTIME"] == 100.0
    with fits.open(d / "jtst01011_spt.fits") as spt:
        assert spt[0].header["ROOTNAME"] == "JTST01011" and spt[0].header["NEXTEND"] == 2
        assert spt[0].header["ASN_MTYP"] == "prod-rpt"
        assert spt[0].header["BITPIX"] == 16 and spt[0].header["NAXIS"] == 0  # as calacs
        assert [int(h.data[0]) for h in spt[1:]] == [0, 1]  # every member's UDL, in order


def test_crj_is_the_sum_of_the_flts_where_nothing_was_rejected(rpt):
    d = rpt.parent
    run_native(rpt)
    crj = _sci(d / "jtst01011_crj.fits")
    flt1, flt2 = _sci(d / "jtst01a1q_flt.fits"), _sci(d / "jtst01a2q_flt.fits")
    dq1, dq2 = _dq(d / "jtst01a1q_flt.fits"), _dq(d / "jtst01a2q_flt.fits")
    # the cosmic ray is rejected in the member that has it, and only there
    assert dq2[CR_PIXEL] & 8192 and not (dq1 & 8192).any()
    assert _dq(d / "jtst01011_crj.fits")[CR_PIXEL] & 8192 == 0  # one exposure was good
    clean = ((dq1 | dq2) & (8192 | 39)) == 0  # 39: the table's BADINPDQ
    assert clean.sum() > 30
    np.testing.assert_allclose(crj[clean], (flt1 + flt2)[clean], rtol=2e-6, atol=1e-3)
    # where the second exposure was rejected, the first one is scaled to the total time
    assert crj[CR_PIXEL] == pytest.approx(2 * flt1[CR_PIXEL], rel=2e-6)
    assert flt2[CR_PIXEL] - flt1[CR_PIXEL] == pytest.approx(CR_DN * 2 / 2.0, rel=0.01)


def test_intermediates_are_recorded_then_deleted(rpt):
    d = rpt.parent
    result = run_native(rpt)
    roles = [(i.path.name, i.role) for i in result.intermediates]
    assert roles == [("jtst01a1q_blv_tmp.fits", "blv_tmp"), ("jtst01a2q_blv_tmp.fits", "blv_tmp"),
                     ("jtst01011_crj_tmp.fits", "crj_tmp")]
    assert all(i.deleted and not i.path.exists() and len(i.sha256) == 64
               for i in result.intermediates)
    by_name = {i.path.name: i for i in result.intermediates}
    blv1 = by_name["jtst01a1q_blv_tmp.fits"]
    assert blv1.derived_from == (d / "jtst01a1q_raw.fits",)
    assert by_name["jtst01011_crj_tmp.fits"].derived_from == (
        d / "jtst01a1q_blv_tmp.fits", d / "jtst01a2q_blv_tmp.fits")
    derived = dict(result.derivations)
    assert derived[d / "jtst01011_crj.fits"] == (d / "jtst01011_crj_tmp.fits",)
    assert derived[d / "jtst01a2q_flt.fits"][0] == d / "jtst01a2q_blv_tmp.fits"
    assert set(derived[d / "jtst01011_spt.fits"]) == {d / "jtst01a1q_spt.fits",
                                                      d / "jtst01a2q_spt.fits"}
    assert {k: v.name for k, v in result.references.items()} == {
        "CCDTAB": "ccd.fits", "BPIXTAB": "bpx.fits", "OSCNTAB": "osc.fits",
        "BIASFILE": "bia.fits", "SATUFILE": "sat.fits", "CRREJTAB": "crr.fits",
        "DARKFILE": "drk.fits", "PFLTFILE": "pfl.fits", "IMPHTTAB": "imp.fits"}


def test_temp_files_are_kept_with_their_checksums(rpt):
    result = run_native(rpt, temp_files=True)
    assert len(result.intermediates) == 3
    for inter in result.intermediates:
        assert not inter.deleted and inter.path.exists()
        assert hashlib.sha256(inter.path.read_bytes()).hexdigest() == inter.sha256
    # the kept _blv_tmp carries the 8192 flags ACSREJ wrote, as calacs's does
    blv2 = rpt.parent / "jtst01a2q_blv_tmp.fits"
    assert _dq(blv2)[CR_PIXEL] & 8192


def test_association_table_is_rewritten(rpt):
    with fits.open(rpt, mode="update") as hdul:
        hdul[1].data["MEMPRSNT"][2] = False  # calacs sets it once the product exists
    run_native(rpt)
    with fits.open(rpt) as hdul:
        assert hdul[0].header["ASN_PROD"] is True
        assert list(hdul[1].data["MEMPRSNT"]) == [True, True, True]
        assert [m.strip() for m in hdul[1].data["MEMNAME"]] == ["JTST01A1Q", "JTST01A2Q",
                                                               "JTST01011"]


def test_trailers_follow_calacs(rpt):
    d = rpt.parent
    run_native(rpt, time_stamps=True)
    member = (d / "jtst01a1q.tra").read_text()
    product = (d / "jtst01011.tra").read_text()
    table = (d / "jtst01010.tra").read_text()
    for text in (member, product, table):
        assert "*** CALACS -- Version" in text and "Input    jtst01010_asn.fits" in text
    assert "ACSCCD" in member and "Output   jtst01a1q_flt.fits" in member
    summary = "Exposure-- Member   2: jtst01a2q  Type: exp-rpt"
    assert summary in member and "jtst01a2q" not in member.split(summary)[-1]
    assert "ACSREJ" in product and "Output   jtst01011_crj.fits" in product
    assert "Input    jtst01a2q_raw.fits" in product and "sky of" not in member
    assert table.startswith(product)
    assert "No DTH product name specified. No product created." in table
    assert table.rstrip().endswith("CALACS completion for jtst01010_asn.fits")
    assert re_timestamps(member)


def re_timestamps(text: str) -> bool:
    return any(calacs._TIMESTAMP.match(line) for line in text.splitlines())


def test_time_stamps_are_left_out_unless_asked(rpt):
    run_native(rpt)
    assert not re_timestamps((rpt.parent / "jtst01a1q.tra").read_text())


def test_products_are_stamped_once(rpt):
    stamp = Stamp("run-1", "act-1", "0" * 64, history=("obtain", "calacs"))
    with stamping(stamp):
        result = run_native(rpt)
    for path in result.products:
        if path.suffix == ".fits":
            hdr = fits.getheader(path)
            assert hdr["PROVRUN"] == "run-1" and hdr["PROVACT"] == "act-1", path.name
            ours = [h for h in hdr.get("HISTORY", []) if str(h).startswith("acsprov:")]
            assert len(ours) == 2, path.name  # not carried over from the _crj_tmp again


def test_cr_split_association(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, memtype="EXP-CRJ")
    run_native(asn)
    crj = fits.getheader(tmp_path / "jtst01011_crj.fits")
    assert crj["CRCORR"] == "COMPLETE" and crj["ASN_MTYP"] == "PROD-CRJ"
    assert fits.getheader(tmp_path / "jtst01a1q_flt.fits")["CRCORR"] == "PERFORM"


@pytest.mark.parametrize("memtype", ["EXP-RPT", "EXP-CRJ"])
def test_shading_is_corrected_in_the_combination(tmp_path, monkeypatch, memtype):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    shape = (NY - TRIMY2, NX - 2 * TRIMX)
    shad = np.zeros(shape)
    shad[:, 1::2] = 50.0  # seconds of extra exposure in odd columns
    _image(tmp_path / "shd.fits", "SHUTTER SHADING", shad)
    # no dark: it is subtracted after the combination, in the summed dark time, which
    # would blur the relation between the _flt and _crj checked below
    asn = _association(tmp_path, memtype=memtype,
                       switches={"SHADCORR": "PERFORM", "DARKCORR": "OMIT"},
                       refs={"SHADFILE": "shd.fits"})
    run_native(asn)
    d = tmp_path
    for name in ("jtst01a1q_flt.fits", "jtst01a2q_flt.fits", "jtst01011_crj.fits"):
        assert fits.getheader(d / name)["SHADCORR"] == "COMPLETE", name
    history = [str(h) for h in fits.getheader(d / "jtst01011_crj.fits")["HISTORY"]]
    assert "SHADCORR complete ..." in history and "  reference image shd.fits" in history
    crj = _sci(d / "jtst01011_crj.fits")
    flt1, flt2 = _sci(d / "jtst01a1q_flt.fits"), _sci(d / "jtst01a2q_flt.fits")
    dq1, dq2 = _dq(d / "jtst01a1q_flt.fits"), _dq(d / "jtst01a2q_flt.fits")
    assert dq2[CR_PIXEL] & 8192 and not (dq1 & 8192).any()
    clean = ((dq1 | dq2) & (8192 | 39)) == 0
    assert clean[:, 0::2].sum() > 10 and clean[:, 1::2].sum() > 10
    # a 100 s _flt is its counts / (100 + S) * 100; the _crj is the counts of both
    # exposures / (200 + S) * 200 (the shading counted once, over the summed time)
    factor = (100.0 + shad) / 100.0 * 200.0 / (200.0 + shad)
    np.testing.assert_allclose(crj[clean], ((flt1 + flt2) * factor)[clean], rtol=2e-6,
                               atol=1e-3)
    assert not np.allclose(factor[:, 1::2], 1.0)
    # the rejected pixel: the first exposure alone, (100 + S) s, scaled to 200 s
    s = shad[CR_PIXEL]
    assert crj[CR_PIXEL] == pytest.approx(flt1[CR_PIXEL] * (100 + s) / 100 * 200 / (100 + s),
                                          rel=2e-6)


def test_members_not_present_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, n=3, present=(True, False, True))
    (tmp_path / "jtst01a2q_raw.fits").unlink()  # not needed: MEMPRSNT is F
    result = run_native(asn)
    made = _files(tmp_path)
    assert {"jtst01a1q_flt.fits", "jtst01a3q_flt.fits", "jtst01011_crj.fits"} <= made
    assert "jtst01a2q_flt.fits" not in made and "jtst01a2q.tra" not in made
    assert fits.getheader(tmp_path / "jtst01011_crj.fits", 1)["NCOMBINE"] == 2
    assert 'Member "jtst01a2q" is not present' in (tmp_path / "jtst01010.tra").read_text()
    assert len([i for i in result.intermediates if i.role == "blv_tmp"]) == 2


def test_one_member_left_is_inconsistent_like_calacs(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, present=(True, False))
    before = _files(tmp_path)
    with pytest.raises(BadInputError, match="not consistent"):
        run_native(asn)
    assert _files(tmp_path) == before


def test_dither_association_makes_flts_and_the_dth_spt(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, memtype="EXP-DTH", name="jtst02010")
    result = run_native(asn)
    made = {p.name for p in result.products}
    assert {"jtst01a1q_flt.fits", "jtst01a2q_flt.fits", "jtst02010_spt.fits",
            "jtst02010.tra", "jtst02010_asn.fits"} <= made
    assert not any("crj" in name for name in _files(tmp_path))
    assert [i.role for i in result.intermediates] == ["blv_tmp", "blv_tmp"]
    assert fits.getheader(tmp_path / "jtst02010_spt.fits")["ASN_MTYP"] == "PROD-DTH"
    assert "ACSDTH" in (tmp_path / "jtst02010.tra").read_text()
    assert fits.getheader(asn)["ASN_PROD"] is True


def test_single_raw_file_blv_tmp_hashed_as_written(tmp_path, monkeypatch):
    # nothing changes a single exposure's _blv_tmp after ACSCCD wrote it, so its
    # checksum is taken from the bytes written: it must be the kept file's
    monkeypatch.setenv("jref", f"{tmp_path}/")
    _association(tmp_path, switches={"RPTCORR": "OMIT"})
    raw = tmp_path / "jtst01a1q_raw.fits"
    result = run_native(raw, temp_files=True)
    (inter,) = result.intermediates
    assert inter.role == "blv_tmp" and not inter.deleted
    assert hashlib.sha256(inter.path.read_bytes()).hexdigest() == inter.sha256


def _read_back(exposure, target, *, digest=None):
    """write_exposure_kept's expectation: write the file, then read it (the reader's view)."""
    fitsio.write_exposure(exposure, target, digest=digest)
    return fitsio.read_exposure(target)


@pytest.mark.parametrize("single", [True, False])
def test_tasks_going_on_from_memory_make_the_products_read_files_make(tmp_path, monkeypatch,
                                                                      single):
    """ACS2D takes a _blv_tmp (single exposure) or _crj_tmp (repeat pair) as it was
    written instead of reading it: every product is the one made when each task reads
    the file the previous one wrote (every card, every pixel), and every temporary's
    recorded sha256 is the kept file's."""
    made = {}
    for how in ("memory", "files"):
        d = tmp_path / how
        d.mkdir()
        monkeypatch.setenv("jref", f"{d}/")
        _association(d, switches={"RPTCORR": "OMIT"} if single else None)
        if how == "files":
            monkeypatch.setattr(calacs, "write_exposure_kept", _read_back)
            monkeypatch.setattr(fitsio, "write_exposure_kept", _read_back)
        result = run_native(d / ("jtst01a1q_raw.fits" if single else "jtst01010_asn.fits"),
                            temp_files=True)
        for inter in result.intermediates:
            assert hashlib.sha256(inter.path.read_bytes()).hexdigest() == inter.sha256
        made[how] = sorted(p for p in result.products if p.suffix == ".fits")
    assert [p.name for p in made["memory"]] == [p.name for p in made["files"]]
    assert any(p.name.endswith("_crj.fits") for p in made["memory"]) != single
    for ours, theirs in zip(made["memory"], made["files"], strict=True):
        diff = fits.FITSDiff(str(ours), str(theirs), ignore_keywords=["DATE", "IRAF-TLM"],
                             rtol=0.0, atol=0.0)
        assert diff.identical, diff.report()


def test_single_raw_file(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    _association(tmp_path, switches={"RPTCORR": "OMIT"})
    raw = tmp_path / "jtst01a1q_raw.fits"
    result = run_native(raw)
    assert sorted(p.name for p in result.products) == ["jtst01a1q.tra", "jtst01a1q_flt.fits"]
    assert fits.getheader(tmp_path / "jtst01a1q_flt.fits")["DARKCORR"] == "COMPLETE"
    assert result.inputs == [raw]
    assert [i.path.name for i in result.intermediates] == ["jtst01a1q_blv_tmp.fits"]
    text = (tmp_path / "jtst01a1q.tra").read_text()
    assert "Processing SINGLE image" in text and text.rstrip().endswith(
        "CALACS completion for jtst01a1q_raw.fits")


# --------------------------------------------------------------------------- CTE branch
def _fake_cte(calls: list):
    """An ACSCTE stand-in: SCI + 1 e-, PCTECORR=COMPLETE, one trailer line."""

    def cte(blv_tmp: Path, blc_tmp: Path, *, nthreads=None, progress=False) -> dict:
        calls.append((blv_tmp.name, blc_tmp.name, nthreads))
        with fits.open(blv_tmp) as hdul:
            hdul[0].header["PCTECORR"] = "COMPLETE"
            hdul[0].header["FILENAME"] = blc_tmp.name
            for hdu in hdul:
                if hdu.name == "SCI":
                    hdu.data = hdu.data + np.float32(1.0)
            hdul.writeto(blc_tmp)
        return {"trailer": ["fake ACSCTE ran"], "references": {
            "PCTETAB": {"name": "cte.fits", "path": str(blv_tmp.parent / "cte.fits")}}}

    return cte


def test_cte_branch_makes_flc_and_crc_with_the_cte_dark(tmp_path, monkeypatch):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, switches={"PCTECORR": "PERFORM"})
    shutil.copyfile(tmp_path / "drk.fits", tmp_path / "dkc.fits")
    with fits.open(tmp_path / "dkc.fits", mode="update") as hdul:
        hdul["SCI"].data = hdul["SCI"].data * np.float32(3.0)  # 0.03 e-/s instead of 0.01
    fits.PrimaryHDU().writeto(tmp_path / "cte.fits")  # only opened by the real ACSCTE
    for raw in tmp_path.glob("*_raw.fits"):
        with fits.open(raw, mode="update") as hdul:
            hdul[0].header["PCTETAB"] = "cte.fits"
            hdul[0].header["DRKCFILE"] = "dkc.fits"
    calls: list = []
    result = run_native(asn, cte=_fake_cte(calls), single_core=True)
    assert calls == [("jtst01a1q_blv_tmp.fits", "jtst01a1q_blc_tmp.fits", 1),
                     ("jtst01a2q_blv_tmp.fits", "jtst01a2q_blc_tmp.fits", 1)]
    d = tmp_path
    assert {"jtst01a1q_flc.fits", "jtst01a2q_flc.fits", "jtst01011_crc.fits"} <= _files(d)
    assert not (d / "jtst01011_crc_spt.fits").exists()
    assert fits.getheader(d / "jtst01a1q_flt.fits")["PCTECORR"] == "PERFORM"
    assert fits.getheader(d / "jtst01a1q_flc.fits")["PCTECORR"] == "COMPLETE"
    assert fits.getheader(d / "jtst01011_crj.fits")["PCTECORR"] == "PERFORM"
    assert fits.getheader(d / "jtst01011_crc.fits")["PCTECORR"] == "COMPLETE"
    # flc = flt + (1 e- - extra dark of 0.02 e-/s x 100 s) / flat 2
    flt, flc = _sci(d / "jtst01a1q_flt.fits"), _sci(d / "jtst01a1q_flc.fits")
    np.testing.assert_allclose(flc - flt, (1.0 - 2.0) / 2.0, atol=1e-4)
    assert _dq(d / "jtst01a2q_flc.fits")[CR_PIXEL] & 8192
    assert result.references["DRKCFILE"].name == "dkc.fits"
    assert result.references["DARKFILE"].name == "drk.fits"
    assert result.references["PCTETAB"].name == "cte.fits"
    assert [i.role for i in result.intermediates].count("blc_tmp") == 2
    assert [i.role for i in result.intermediates][-1] == "crc_tmp"
    assert "fake ACSCTE ran" in (d / "jtst01a1q.tra").read_text()
    assert dict(result.derivations)[d / "jtst01a1q_flc.fits"][0] == d / "jtst01a1q_blc_tmp.fits"


# --------------------------------------------------------------------------- refusals
def test_existing_product_is_refused_and_nothing_written(rpt):
    d = rpt.parent
    (d / "jtst01011_crj.fits").write_bytes(b"old")
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    with pytest.raises(BadInputError, match=r"jtst01011_crj\.fits already exist"):
        run_native(rpt)
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before


def test_missing_member_raw_is_one_clear_error(rpt):
    d = rpt.parent
    (d / "jtst01a2q_raw.fits").unlink()
    before = _files(d)
    with pytest.raises(AcsprovError) as info:
        run_native(rpt)
    message = str(info.value)
    assert "JTST01A2Q" in message and "jtst01a2q_raw.fits" in message and "\n" not in message
    assert _files(d) == before


def test_missing_reference_files_are_all_named(rpt):
    d = rpt.parent
    (d / "drk.fits").unlink()
    (d / "crr.fits").unlink()
    before = _files(d)
    with pytest.raises(ReferenceFileError, match=r"DARKFILE 'drk.fits'.*CRREJTAB 'crr.fits'"):
        run_native(rpt)
    assert _files(d) == before


@pytest.mark.parametrize("memtype, edit, match", [
    ("EXP-RPT", {"CRCORR": "PERFORM"}, "both PERFORM"),
    ("EXP-RPT", {"RPTCORR": "OMIT", "CRCORR": "PERFORM"}, "not consistent"),
    ("EXP-DTH", {k: "OMIT" for k in ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR",
                                     "FLATCORR", "PHOTCORR")}, "nothing to do"),
])
def test_switches_calacs_refuses(tmp_path, monkeypatch, memtype, edit, match):
    monkeypatch.setenv("jref", f"{tmp_path}/")
    asn = _association(tmp_path, memtype=memtype, switches=edit)
    before = _files(tmp_path)
    with pytest.raises(BadInputError, match=match):
        run_native(asn)
    assert _files(tmp_path) == before


def test_not_a_calacs_input(tmp_path):
    path = tmp_path / "x_flt.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(BadInputError, match="_raw.fits or _asn.fits"):
        run_native(path)
    with pytest.raises(BadInputError, match="not found"):
        run_native(tmp_path / "nothing_asn.fits")


def test_failure_after_the_checks_leaves_no_partial_products(rpt, monkeypatch):
    d = rpt.parent
    before = _files(d)
    asn_bytes = rpt.read_bytes()
    real = calacs.run_acs2d

    def failing(exposure, **kw):
        if kw.get("output_name", "").endswith("_flt.fits") and "a2q" in kw["output_name"]:
            raise BadInputError("simulated failure in ACS2D")
        return real(exposure, **kw)

    monkeypatch.setattr(calacs, "run_acs2d", failing)
    with pytest.raises(BadInputError, match="simulated failure"):
        run_native(rpt)
    assert _files(d) == before and rpt.read_bytes() == asn_bytes
