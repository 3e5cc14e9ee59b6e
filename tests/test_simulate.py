"""Tests of the ACS simulator: layouts, truth models, reference files, raw data, products.

Expected values come from the ACS layout (raw sizes, prescan and virtual-overscan
positions, EXTVER/CCDCHIP order), from invariants (charge conservation, determinism)
or from the reference files the simulator wrote (CCDTAB bias levels), never from an
earlier run of the simulator.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from acsprov.errors import AcsprovError, BadInputError, DatasetError, ReferenceFileError
from acsprov.simulate import datasets, geometry, reffiles, truth
from acsprov.simulate.datasets import (
    DATASETS,
    SWITCH_KEYWORDS,
    calibration_switches,
    get_dataset,
)

SEED = 4242


# --------------------------------------------------------------------------------------
# fixtures: files written once per module
@pytest.fixture(scope="module")
def hrc_refs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jref_hrc")
    reffiles.write_reference_files(out, seed=SEED, detectors=["HRC"])
    reffiles.write_reference_files(out, seed=SEED, detectors=["WFC"],
                                   reftypes=["ccdtab", "oscntab", "bpixtab"])
    return out


@pytest.fixture(scope="module")
def hrc_download(tmp_path_factory) -> tuple[Path, list[Path]]:
    from acsprov.simulate.raw import simulate_dataset

    out = tmp_path_factory.mktemp("j8is01020")
    return out, simulate_dataset("j8is01020", out, seed=SEED)


@pytest.fixture(scope="module")
def subarray_download(tmp_path_factory) -> tuple[Path, list[Path]]:
    from acsprov.simulate.raw import simulate_dataset

    out = tmp_path_factory.mktemp("jd5702jpq")
    return out, simulate_dataset("jd5702jpq", out, seed=SEED)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ccdtab_row(path: Path, ccdamp: str, chip: int, gain: float):
    rows = fits.getdata(path, 1)
    sel = ((np.char.strip(rows["CCDAMP"]) == ccdamp) & (rows["CCDCHIP"] == chip)
           & np.isclose(rows["CCDGAIN"], gain))
    assert sel.sum() == 1
    return rows[sel][0]


# --------------------------------------------------------------------------------------
# datasets
def test_catalogue_holds_the_handbook_datasets():
    assert set(DATASETS) == {"jd1y04010", "j8is01020", "j8is01040", "j8e654010", "jd5702jpq"}
    jd1 = DATASETS["jd1y04010"]
    assert [m.rootname for m in jd1.members] == ["JD1Y04RLQ", "JD1Y04RNQ"]
    assert {m.memtype for m in jd1.members} == {"EXP-CRJ"}
    assert (jd1.product, jd1.product_memtype, jd1.crsplit) == ("JD1Y04011", "PROD-CRJ", 2)
    assert jd1.filter1 == "F502N" and jd1.proposid == 14398 and jd1.post_sm4
    assert 57300 < jd1.expstart < 57700  # Cycle 23, 2016
    dth = DATASETS["j8e654010"]
    assert [m.memtype for m in dth.members] == ["EXP-DTH", "EXP-DTH"]
    assert dth.product == "J8E654010" and dth.exptime == 480.0 and not dth.post_sm4
    assert dth.members[0].dither != dth.members[1].dither
    for name, roots in (("j8is01020", ["J8IS01J2Q", "J8IS01J3Q"]),
                        ("j8is01040", ["J8IS01J8Q", "J8IS01J9Q"])):
        spec = DATASETS[name]
        assert [m.rootname for m in spec.members] == roots
        assert spec.detector == "HRC" and spec.nrptexp == 2 and spec.exptime == 1.0
        assert spec.product == name.upper()[:-1] + "1" and spec.product_memtype == "PROD-RPT"
    sub = DATASETS["jd5702jpq"]
    assert sub.aperture == "WFC1B-1K" and sub.ccdamp == "B" and sub.subarray
    assert not sub.is_association and sub.expstart > Time("2016-10-01").mjd


def test_unknown_dataset_is_a_dataset_error():
    with pytest.raises(DatasetError, match="nosuch"):
        get_dataset("nosuch")
    assert get_dataset("JD5702JPQ") is DATASETS["jd5702jpq"]


def test_calibration_switches_follow_the_handbook():
    for spec in DATASETS.values():
        sw = calibration_switches(spec)
        assert tuple(sw) == SWITCH_KEYWORDS and len(SWITCH_KEYWORDS) == 17
        assert set(sw.values()) <= {"PERFORM", "OMIT"}
    assert calibration_switches(DATASETS["jd1y04010"])["CRCORR"] == "PERFORM"
    assert calibration_switches(DATASETS["jd1y04010"])["PCTECORR"] == "PERFORM"
    hrc = calibration_switches(DATASETS["j8is01020"])
    assert (hrc["RPTCORR"], hrc["CRCORR"], hrc["PCTECORR"]) == ("PERFORM", "OMIT", "OMIT")
    assert calibration_switches(DATASETS["j8e654010"])["PCTECORR"] == "OMIT"  # pre-SM4
    assert calibration_switches(DATASETS["jd5702jpq"])["PCTECORR"] == "OMIT"  # subarray


# --------------------------------------------------------------------------------------
# geometry
def test_wfc_full_frame_layout_matches_acs():
    chip2, chip1 = geometry.WFC_FULL.chips
    assert (chip2.extver, chip2.ccdchip, chip2.amps) == (1, 2, "CD")
    assert (chip1.extver, chip1.ccdchip, chip1.amps) == (2, 1, "AB")
    for chip in (chip1, chip2):
        assert chip.shape == (2068, 4144) and chip.ltv1 == 24.0
        rows, cols = geometry.science_slices(chip)
        assert (cols.start, cols.stop) == (24, 4120) and rows.stop - rows.start == 2048
        ovs = geometry.overscan_slices(chip)
        assert ovs["leading"][1] == slice(0, 24) and ovs["trailing"][1] == slice(4120, 4144)
    assert chip2.ltv2 == 0.0 and geometry.overscan_slices(chip2)["virtual"][0] == slice(2048, 2068)
    assert chip1.ltv2 == 20.0 and geometry.overscan_slices(chip1)["virtual"][0] == slice(0, 20)
    assert geometry.amp_columns(chip1) == {"A": slice(0, 2072), "B": slice(2072, 4144)}
    assert not geometry.amp_readout_at_top(chip2) and geometry.amp_readout_at_top(chip1)


def test_hrc_layout():
    (chip,) = geometry.HRC_FULL.chips
    assert chip.shape == (1044, 1062) and (chip.ltv1, chip.ltv2) == (19.0, 0.0)
    assert geometry.science_slices(chip) == (slice(0, 1024), slice(19, 1043))
    assert geometry.overscan_slices(chip)["virtual"][0] == slice(1024, 1044)


def test_wfc1b_1k_subarray_layout():
    lay = geometry.raw_layout("WFC", "WFC1B-1K", subarray=True)
    (chip,) = lay.chips
    assert (lay.ccdamp, chip.ccdchip, chip.amps, chip.extver) == ("B", 1, "B", 1)
    assert chip.shape == (1024, 2072)
    assert (chip.ltv1, chip.ltv2) == (-2048.0, -1024.0)
    # amp B's prescan is at the right-hand end of the serial register; no virtual rows
    ovs = geometry.overscan_slices(chip)
    assert set(ovs) == {"trailing"} and ovs["trailing"][1] == slice(2048, 2072)
    assert geometry.physical_slices(chip) == (slice(1024, 2048), slice(2048, 4096))
    assert geometry.window_slices(chip) == (slice(1044, 2068), slice(2072, 4144))


@pytest.mark.parametrize("aperture", ["WFC1A-2K", "WFC1B-1K", "WFC2C-1K", "WFC2D-512"])
def test_subarray_is_a_window_of_the_full_chip(aperture):
    """Cutting a subarray from a full raw chip and trimming both lands on the same pixels."""
    (chip,) = geometry.raw_layout("WFC", aperture, subarray=True).chips
    full = geometry.full_chip("WFC", chip.ccdchip)
    raw_full = np.arange(full.ny * full.nx).reshape(full.shape)
    sub = raw_full[geometry.window_slices(chip)]
    assert np.array_equal(geometry.trim(sub, chip),
                          geometry.trim(raw_full, full)[geometry.physical_slices(chip)])
    # LTV maps physical to image coordinates: image x = physical x + LTV1
    px = geometry.physical_slices(chip)[1].start + 1
    assert px + chip.ltv1 == geometry.science_slices(chip)[1].start + 1


def test_oscntab_rows_use_1_based_raw_coordinates():
    row = geometry.oscntab_row(geometry.WFC_FULL.chips[0], "ABCD")
    assert (row["NX"], row["NY"], row["TRIMX1"], row["TRIMX2"]) == (4144, 2068, 24, 24)
    assert (row["TRIMY1"], row["TRIMY2"], row["VY1"], row["VY2"]) == (0, 20, 2049, 2068)
    assert (row["BIASSECTA1"], row["BIASSECTA2"], row["BIASSECTB2"]) == (1, 24, 4144)
    # calacs fits one bias drift per chip to VX/VY, across both amplifiers: WFC rows
    # leave the virtual overscan out (TRIMY = 20 still marks it)
    nodrift = geometry.oscntab_row(geometry.WFC_FULL.chips[0], "ABCD", drift=False)
    assert (nodrift["VX1"], nodrift["VX2"], nodrift["VY1"], nodrift["VY2"]) == (0, 0, 0, 0)
    assert nodrift["TRIMY2"] == 20
    sub = geometry.oscntab_row(geometry.raw_layout("WFC", "WFC1B-1K", subarray=True).chips[0],
                               "B")
    assert (sub["TRIMX1"], sub["TRIMX2"], sub["TRIMY1"], sub["TRIMY2"]) == (0, 24, 0, 0)
    # a single amplifier's overscan goes in BIASSECTA, wherever it is on the line:
    # calacs reads a one-amplifier bias level from BIASSECTA (a 0 there = no pixels)
    assert (sub["BIASSECTA1"], sub["BIASSECTA2"], sub["BIASSECTB2"]) == (2049, 2072, 0)
    left = geometry.oscntab_row(geometry.raw_layout("WFC", "WFC2C-1K", subarray=True).chips[0],
                                "C")
    assert (left["BIASSECTA1"], left["BIASSECTA2"], left["BIASSECTB2"]) == (1, 24, 0)


def test_readout_view_puts_each_amplifier_first_pixel_at_the_origin():
    chip2, chip1 = geometry.WFC_FULL.chips
    for chip, corners in ((chip2, {"C": (0, 0), "D": (0, -1)}),
                          (chip1, {"A": (-1, 0), "B": (-1, -1)})):
        for amp, (row, col) in corners.items():
            raw = np.zeros(chip.shape)
            view = geometry.readout_view(raw, chip, amp)
            assert view.shape == (2068, 2072)
            view[0, 0] = 1.0  # the view writes through to the raw array
            assert raw[row, col] == 1.0, (chip.ccdchip, amp)
    (sub,) = geometry.raw_layout("WFC", "WFC1B-1K", subarray=True).chips
    raw = np.arange(sub.ny * sub.nx, dtype=float).reshape(sub.shape)
    assert geometry.readout_view(raw, sub, "B")[0, 0] == raw[-1, -1]
    assert geometry.amp_on_right(sub, "B") and not geometry.amp_on_right(chip2, "C")


def test_bad_layout_requests_raise():
    with pytest.raises(BadInputError, match="WFC3Z-1K"):
        geometry.raw_layout("WFC", "WFC3Z-1K", subarray=True)
    with pytest.raises(BadInputError, match="SBC"):
        geometry.raw_layout("SBC")
    with pytest.raises(BadInputError, match="shape"):
        geometry.trim(np.zeros((3, 3)), geometry.HRC_FULL.chips[0])
    assert issubclass(BadInputError, AcsprovError)


# --------------------------------------------------------------------------------------
# truth
def test_truth_models_are_seeded():
    a = truth.superbias("HRC", 1, seed=1)
    assert np.array_equal(a, truth.superbias("HRC", 1, seed=1))
    assert not np.array_equal(a, truth.superbias("HRC", 1, seed=2))
    assert not a.flags.writeable  # cached arrays cannot be spoiled by a caller
    assert abs(float(a.mean())) < 0.5
    f = truth.pixel_flat("HRC", 1, "CLEAR", seed=1)
    assert abs(float(f.mean()) - 1.0) < 1e-4


def test_bias_stripes_have_the_requested_rms():
    s = truth.bias_stripes(np.random.default_rng(3), 2068, 0.45)
    assert s.shape == (2068,)
    assert abs(s.mean()) < 1e-9 and s.std() == pytest.approx(0.45)
    # 1/f: neighbouring rows are correlated, unlike white noise
    assert np.corrcoef(s[:-1], s[1:])[0, 1] > 0.3


def test_stripes_are_common_to_all_amplifiers_and_follow_readout_time():
    nodes = truth.bias_stripes(np.random.default_rng(5), 2068, 0.9)
    chip2, chip1 = geometry.WFC_FULL.chips
    views = [geometry.readout_view(truth.stripe_pattern(nodes, chip), chip, amp)
             for chip in (chip2, chip1) for amp in chip.amps]
    for view in views[1:]:  # the four amplifiers see the same signal at the same time
        assert np.array_equal(view, views[0])
    # the mean over the 24 prescan pixels of line i (what calacs's destriping measures)
    # is the node value; inside the line it varies linearly towards line i+1
    assert np.allclose(views[0][:, :24].mean(axis=1), nodes, atol=0.01)
    far = views[0][100, 2071]
    step = (2071 - 11.5) / (2072 + truth.LINE_GAP_PIXELS)
    assert far == pytest.approx(nodes[100] + step * (nodes[101] - nodes[100]), abs=1e-5)


@pytest.mark.parametrize("amp", ["A", "B", "C", "D"])
def test_bias_shift_is_what_calacs_removes(amp):
    rng = np.random.default_rng(11)
    level = 4400.0
    lines = level + rng.normal(0.0, 4.0, (2068, 2072))
    lines[:2048, 24:] += rng.poisson(30.0, (2048, 2048))
    lines[700:705, 300:305] += 60000.0  # a bright star
    shifted = truth.add_bias_shift(lines, amp, level=level)
    par = truth.BIAS_SHIFT[amp]
    # the DC level of the dual-slope integrator raises the whole output
    dc = par.dsi_sensitivity * truth.BIAS_SHIFT_DC_RATIO * level
    assert np.median(shifted[2060:, :24] - lines[2060:, :24]) == pytest.approx(dc, rel=0.02)
    # calacs takes the level between lines from the magic square, which sees the shift
    square = truth.magic_square_mean(shifted)
    assert square == pytest.approx(level + dc, abs=1.0)
    back = truth.remove_bias_shift(shifted, amp, level=square)
    assert np.percentile(np.abs(back - lines), 99.9) < 0.01
    assert np.abs(back - lines).max() < 0.2  # the first line's start
    assert truth.magic_square_mean(lines[:1024]) is None  # -1K readouts have none


def test_hot_pixels_accumulate_with_time():
    early = truth.dark_rate("HRC", 1, 52400.0, seed=SEED)
    late = truth.dark_rate("HRC", 1, 54000.0, seed=SEED)
    assert (late > 0.08).sum() > 2 * (early > 0.08).sum() > 0
    assert np.all(late >= early - 1e-7)


@pytest.mark.parametrize("amp_at_top", [False, True])
def test_cte_trails_conserve_charge_and_trail_away_from_the_amplifier(amp_at_top):
    img = np.zeros((200, 3))
    img[100, 1] = 1000.0
    transfers = (200.0 - np.arange(200)) if amp_at_top else np.arange(1.0, 201.0)
    out = truth.cte_trails(img, transfers, scale=1.0, amp_at_top=amp_at_top, trail_length=3.0)
    assert out.sum() == pytest.approx(1000.0, rel=1e-9)  # trail fits in the array
    assert out[100, 1] < 1000.0
    upstream = out[101:, 1] if not amp_at_top else out[:100, 1]
    downstream = out[:100, 1] if not amp_at_top else out[101:, 1]
    assert upstream.sum() > 0 and downstream.sum() == 0
    # more transfers, more loss
    far = np.zeros((200, 3))
    far[190 if not amp_at_top else 10, 1] = 1000.0
    out_far = truth.cte_trails(far, transfers, scale=1.0, amp_at_top=amp_at_top)
    assert out_far.max() < out[100, 1]
    assert np.array_equal(truth.cte_trails(img, transfers, scale=0.0, amp_at_top=False), img)


def test_cte_losses_grow_with_time():
    assert truth.cte_scale("WFC", 52400) < truth.cte_scale("WFC", 57600) < \
        truth.cte_scale("WFC", 57800)
    assert truth.cte_scale("HRC", 57800) == 0.0


def test_bleeding_keeps_charge_below_the_well():
    from acsprov.simulate.raw import bleed

    e = np.full((50, 2), 100.0)
    e[25, 0] = 1000.0
    fw = np.full((50, 2), 300.0)
    out = bleed(e, fw)
    assert out.max() <= 300.0
    assert out.sum() == pytest.approx(e.sum())
    assert np.array_equal(out[:, 1], e[:, 1])
    assert out[24, 0] == out[26, 0] == 300.0  # spilled both ways


def test_cosmic_rays_depend_on_the_generator():
    from acsprov.simulate.raw import add_cosmic_rays

    a = add_cosmic_rays(np.random.default_rng(1), (256, 256), 400.0)
    b = add_cosmic_rays(np.random.default_rng(1), (256, 256), 400.0)
    c = add_cosmic_rays(np.random.default_rng(2), (256, 256), 400.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.001 < (a > 0).mean() < 0.05


# --------------------------------------------------------------------------------------
# reference files
def test_catalogue_names_look_like_crds_names():
    cat = reffiles.reference_catalog()
    names = [i.filename for i in cat]
    assert len(names) == len(set(names))
    suffix = {"biasfile": "bia", "darkfile": "drk", "drkcfile": "dkc", "pfltfile": "pfl",
              "bpixtab": "bpx", "ccdtab": "ccd", "oscntab": "osc", "atodtab": "a2d",
              "satufile": "sat", "flshfile": "fls", "shadfile": "shd", "crrejtab": "crr",
              "imphttab": "imp", "mlintab": "lin", "snkcfile": "snk", "pctetab": "cte",
              "idctab": "idc", "npolfile": "npl", "d2imfile": "d2i", "mdriztab": "mdz"}
    for info in cat:
        assert re.fullmatch(r"[0-9a-z]{8}j_[a-z0-9]{3}\.fits", info.filename)
        assert info.suffix == suffix[info.reftype]
        assert re.fullmatch(r"INFLIGHT \d\d/\d\d/\d{4} \d\d/\d\d/\d{4}", info.pedigree)
    by_name = {i.filename: i for i in cat}
    assert by_name["6641828tj_bia.fits"].reftype == "biasfile"
    assert by_name["6641828tj_bia.fits"].selection["CCDGAIN"] == "2.0"
    assert by_name["8ch1518tj_cte.fits"].reftype == "pctetab"
    assert by_name["9362018jj_dkc.fits"].reftype == "drkcfile"
    assert set(suffix) == {i.reftype for i in cat}


def test_references_for_every_dataset_are_catalogued():
    names = {i.filename for i in reffiles.reference_catalog()}
    for spec in DATASETS.values():
        refs = reffiles.references_for(spec)
        assert tuple(refs) == reffiles.REFERENCE_KEYWORDS
        for value in refs.values():
            assert value == "N/A" or (value.startswith("jref$") and value[5:] in names)
    jd1 = reffiles.references_for(DATASETS["jd1y04010"])
    assert jd1["BIASFILE"] == "jref$6641828tj_bia.fits"
    assert jd1["PCTETAB"] == "jref$8ch1518tj_cte.fits"
    sub = reffiles.references_for(DATASETS["jd5702jpq"])
    assert sub["PCTETAB"] == sub["DRKCFILE"] == "N/A"  # as the handbook says
    # the subarray gets the full-frame superbias (APERTURE='ANY_FULL'), cut by calacs
    assert sub["BIASFILE"] == "jref$6641828tj_bia.fits"
    assert all(sub[k].startswith("jref$") for k in ("CCDTAB", "OSCNTAB", "SNKCFILE",
                                                    "SATUFILE", "DARKFILE", "PFLTFILE"))
    assert reffiles.references_for(DATASETS["j8e654010"])["PFLTFILE"].endswith("_pfl.fits")


def test_unknown_reference_is_a_reference_error():
    with pytest.raises(ReferenceFileError, match="nosuch_bia.fits"):
        reffiles.build_reference("nosuch_bia.fits")


def test_written_reference_files_carry_the_standard_keywords(hrc_refs):
    written = sorted(p.name for p in hrc_refs.iterdir() if p.suffix == ".fits")
    expected = sorted(i.filename for i in reffiles.reference_catalog() if i.detector == "HRC")
    assert set(expected) <= set(written)
    for name in expected:
        h = fits.getheader(hrc_refs / name)
        for key in ("INSTRUME", "DETECTOR", "FILETYPE", "USEAFTER", "PEDIGREE", "DESCRIP"):
            assert key in h, (name, key)
        assert h["INSTRUME"] == "ACS" and h["DETECTOR"] == "HRC"
        assert any("Synthetic" in str(c) for c in h["COMMENT"])


def test_hrc_bias_has_raw_geometry_and_dark_is_trimmed(hrc_refs):
    with fits.open(hrc_refs / "m9i1742aj_bia.fits") as bia:
        assert bia[0].header["NEXTEND"] == 3
        assert bia["SCI", 1].data.shape == (1044, 1062)
        assert (bia["SCI", 1].header["LTV1"], bia["SCI", 1].header["CCDCHIP"]) == (19.0, 1)
        assert bia["ERR", 1].data is None and bia["ERR", 1].header["NPIX1"] == 1062
    with fits.open(hrc_refs / "mbq1541aj_drk.fits") as drk:
        sci, dq = drk["SCI", 1].data, drk["DQ", 1].data
        assert sci.shape == dq.shape == (1024, 1024)
        assert np.array_equal(dq == 16, sci > 0.08)  # hot pixels flagged in the superdark


def test_ccdtab_and_oscntab_rows(hrc_refs):
    row = _ccdtab_row(hrc_refs / "o1q1519bj_ccd.fits", "C", 1, 2.0)
    assert row["ATODGNC"] > 2.0 and 2000 < row["CCDBIASC"] < 3000 and row["ATODSAT"] == 65535
    assert (row["AMPX"], row["AMPY"]) == (0, 0)  # HRC: amp C alone
    wfc = _ccdtab_row(hrc_refs / "4bb1536aj_ccd.fits", "ABCD", 2, 2.0)
    # AMPX is in trimmed pixels (calacs adds LTV1 = 24): the second amplifier starts at
    # raw column 2073; one amplifier row per chip, so AMPY = 0
    assert wfc["OVRHUFLS"] > 0 and (wfc["AMPX"], wfc["AMPY"]) == (2048, 0)
    # a readout through B or D alone puts every column on the "second amplifier"
    assert _ccdtab_row(hrc_refs / "4bb1536aj_ccd.fits", "B", 1, 2.0)["AMPX"] == 0
    assert _ccdtab_row(hrc_refs / "4bb1536aj_ccd.fits", "D", 2, 2.0)["AMPX"] == 0
    assert _ccdtab_row(hrc_refs / "4bb1536aj_ccd.fits", "A", 1, 2.0)["AMPX"] == 2048
    osc = fits.getdata(hrc_refs / "17717071j_osc.fits", 1)
    sub = osc[(np.char.strip(osc["CCDAMP"]) == "B") & (osc["NY"] == 1024)]
    assert len(sub) == 1 and (sub["NX"][0], sub["TRIMX2"][0]) == (2072, 24)
    assert (sub["BIASSECTA1"][0], sub["BIASSECTA2"][0]) == (2049, 2072)
    wfc_rows = osc[np.char.strip(osc["CCDAMP"]) == "ABCD"]
    assert len(wfc_rows) == 2 and not wfc_rows["VY2"].any()
    hrc_osc = fits.getdata(hrc_refs / "o1q1519cj_osc.fits", 1)
    assert (hrc_osc["VY1"][0], hrc_osc["VY2"][0]) == (1025, 1044)  # HRC keeps its drift fit


def test_crrejtab_takes_the_minimum_of_two_exposures():
    with reffiles.build_reference("n4e1230aj_crr.fits", seed=SEED) as crr:
        rows = crr[1].data
        guess = dict(zip(rows["CRSPLIT"].tolist(), np.char.strip(rows["INITGUES"]).tolist(),
                         strict=False))
    # the median of two values is their mean, which keeps half of each cosmic ray
    assert guess[2] == "minimum" and guess[4] == "median"


def test_pctetab_is_generation_3():
    with reffiles.build_reference("8ch1518tj_cte.fits", seed=SEED) as cte:
        assert cte[0].header["CTE_NAME"] == "Par/Serial PixelCTE 2023"
        assert len(cte) == 21
        assert [h.name for h in cte[1:5]] == ["QPROF", "SCLBYCOL", "RPROF", "CPROF"]
        assert {h.ver for h in cte[1:]} == {1, 2, 3, 4, 5}
        assert len(cte["QPROF", 1].data) == 9999 and len(cte["SCLBYCOL", 5].data) == 8192


# --------------------------------------------------------------------------------------
# raw data, association and archive products
def test_hrc_download_holds_asn_raw_spt_flt(hrc_download):
    out, files = hrc_download
    assert [p.name for p in files] == [
        "j8is01020_asn.fits",
        "j8is01j2q_raw.fits", "j8is01j2q_spt.fits", "j8is01j2q_flt.fits",
        "j8is01j3q_raw.fits", "j8is01j3q_spt.fits", "j8is01j3q_flt.fits",
    ]
    assert not list(out.glob(".*.tmp"))


def test_asn_table_lists_members_and_product(hrc_download):
    out, _ = hrc_download
    with fits.open(out / "j8is01020_asn.fits") as asn:
        assert asn[0].header["ASN_ID"] == "J8IS01020"
        t = asn["ASN"].data
        assert list(np.char.strip(t["MEMNAME"])) == ["J8IS01J2Q", "J8IS01J3Q", "J8IS01021"]
        assert list(np.char.strip(t["MEMTYPE"])) == ["EXP-RPT", "EXP-RPT", "PROD-RPT"]
        assert t["MEMPRSNT"].all()


def test_raw_file_layout_and_headers(hrc_download):
    out, _ = hrc_download
    with fits.open(out / "j8is01j2q_raw.fits") as raw:
        assert [(h.name, h.ver) for h in raw[1:]] == [("SCI", 1), ("ERR", 1), ("DQ", 1)]
        assert raw["SCI", 1].data.dtype == np.uint16
        assert raw["SCI", 1].data.shape == (1044, 1062)
        for name in ("ERR", "DQ"):
            assert raw[name, 1].data is None
            assert (raw[name, 1].header["NPIX1"], raw[name, 1].header["NPIX2"]) == (1062, 1044)
        ph, sh = raw[0].header, raw["SCI", 1].header
        for key in SWITCH_KEYWORDS:
            assert ph[key] in ("PERFORM", "OMIT"), key
        for key in reffiles.REFERENCE_KEYWORDS:
            assert ph[key] == "N/A" or ph[key].startswith("jref$"), key
        assert ph["SIMULATE"] is True and ph["RPTCORR"] == "PERFORM"
        assert (ph["DETECTOR"], ph["CCDAMP"], ph["NRPTEXP"], ph["ASN_MTYP"]) == \
            ("HRC", "C", 2, "EXP-RPT")
        assert ph["ASN_ID"] == "J8IS01020" and ph["ASN_TAB"] == "j8is01020_asn.fits"
        start = Time(f"{ph['DATE-OBS']}T{ph['TIME-OBS']}", scale="utc").mjd
        assert start == pytest.approx(ph["EXPSTART"], abs=1.5 / 86400)
        assert (ph["EXPEND"] - ph["EXPSTART"]) * 86400 == pytest.approx(ph["EXPTIME"], abs=0.01)
        assert (sh["CCDCHIP"], sh["LTV1"], sh["LTV2"], sh["BUNIT"]) == (1, 19.0, 0.0, "COUNTS")
        for key in ("CRPIX1", "CRVAL1", "CD1_1", "CD2_2", "ORIENTAT", "VAFACTOR", "SDQFLAGS"):
            assert key in sh
        for name in ("ERR", "DQ"):  # every extension of the imset carries the WCS
            assert raw[name, 1].header["CD1_1"] == sh["CD1_1"]
        assert "DATE" in ph and ph["DATE"] > ph["DATE-OBS"]


def test_overscan_bias_level_is_near_ccdtab(hrc_download, hrc_refs):
    out, _ = hrc_download
    row = _ccdtab_row(hrc_refs / "o1q1519bj_ccd.fits", "C", 1, 2.0)
    raw = fits.getdata(out / "j8is01j2q_raw.fits", ("SCI", 1)).astype(float)
    assert np.median(raw[:, :19]) == pytest.approx(row["CCDBIASC"], abs=10.0)
    assert np.median(raw[:, -19:]) == pytest.approx(row["CCDBIASC"], abs=10.0)


def test_cosmic_rays_differ_between_members(hrc_download):
    out, _ = hrc_download
    dq1 = fits.getdata(out / "j8is01j2q_flt.fits", ("DQ", 1))
    dq2 = fits.getdata(out / "j8is01j3q_flt.fits", ("DQ", 1))
    cr1, cr2 = (dq1 & 8192) > 0, (dq2 & 8192) > 0
    assert cr1.any() and cr2.any()
    assert (cr1 & cr2).sum() < 0.2 * min(cr1.sum(), cr2.sum())
    # static defects are the same in both
    assert np.array_equal(dq1 & 4, dq2 & 4)


def test_flt_products_are_calibrated_and_trimmed(hrc_download):
    out, _ = hrc_download
    with fits.open(out / "j8is01j2q_flt.fits") as flt:
        assert [(h.name, h.ver) for h in flt[1:]] == [("SCI", 1), ("ERR", 1), ("DQ", 1)]
        sci, err = flt["SCI", 1].data, flt["ERR", 1].data
        assert sci.shape == err.shape == (1024, 1024) and sci.dtype.itemsize == 4
        assert flt["SCI", 1].header["BUNIT"] == "ELECTRONS"
        ph = flt[0].header
        assert ph["CAL_VER"].startswith("4.") and ph["SIMULATE"] is True
        # as calacs writes an _flt: ACSCCD/ACS2D switches COMPLETE, RPTCORR (done by
        # ACSREJ for the _crj) and DRIZCORR left as they were
        assert ph["BIASCORR"] == ph["FLATCORR"] == ph["EXPSCORR"] == "COMPLETE"
        assert ph["RPTCORR"] == ph["DRIZCORR"] == "PERFORM" and ph["PCTECORR"] == "OMIT"
        sh = flt["SCI", 1].header  # calacs writes the photometry to the SCI header
        assert sh["PHOTFLAM"] > 0 and sh["PHOTMODE"].startswith("ACS HRC MJD#")
        assert "PHOTFLAM" not in ph and sh["PHOTZPT"] == -21.1
        # bias removed: the sky of a 1 s exposure is a few electrons at most
        assert abs(float(np.median(sci))) < 5.0
        assert np.all(err > 0)


def test_same_seed_gives_identical_files(hrc_download, tmp_path):
    from acsprov.simulate.raw import simulate_dataset

    out, files = hrc_download
    again = simulate_dataset("j8is01020", tmp_path, seed=SEED)
    assert [_sha256(p) for p in again] == [_sha256(p) for p in files]
    other = simulate_dataset("j8is01020", tmp_path / "other", seed=SEED + 1, products=False)
    assert _sha256(other[1]) != _sha256(out / "j8is01j2q_raw.fits")


def test_subarray_raw_matches_the_cycle24_layout(subarray_download, hrc_refs):
    out, files = subarray_download
    assert [p.name for p in files] == ["jd5702jpq_raw.fits", "jd5702jpq_spt.fits",
                                       "jd5702jpq_flt.fits"]
    with fits.open(out / "jd5702jpq_raw.fits") as raw:
        ph, sh = raw[0].header, raw["SCI", 1].header
        assert len(raw) == 4 and raw["SCI", 1].data.shape == (1024, 2072)
        assert (ph["APERTURE"], ph["CCDAMP"], ph["SUBARRAY"]) == ("WFC1B-1K", "B", True)
        assert (sh["CCDCHIP"], sh["LTV1"], sh["LTV2"]) == (1, -2048.0, -1024.0)
        assert ph["PCTECORR"] == "OMIT" and ph["PCTETAB"] == ph["DRKCFILE"] == "N/A"
        assert ph["BIASFILE"] == "jref$6641828tj_bia.fits"
        assert ph["ASN_ID"] == "NONE" and ph["JWROTYPE"] == "DS_INT"
        row = _ccdtab_row(hrc_refs / "4bb1536aj_ccd.fits", "B", 1, 2.0)
        prescan = raw["SCI", 1].data[:, 2048:].astype(float)
        assert np.median(prescan) == pytest.approx(row["CCDBIASB"], abs=10.0)
    with fits.open(out / "jd5702jpq_flt.fits") as flt:
        assert flt["SCI", 1].data.shape == (1024, 2048)
        assert (flt["SCI", 1].header["LTV1"], flt["SCI", 1].header["LTV2"]) == (-2048.0, -1024.0)
        dq = flt["DQ", 1].data
        assert ((dq & 1024) > 0).any()  # post-SM4 sink pixels
        assert not ((dq & 8192) > 0).any()  # a single exposure: no CR rejection
    spt = fits.getheader(out / "jd5702jpq_spt.fits")
    assert (spt["NUMCOLS"], spt["NUMROWS"]) == (2072, 1024)


def test_simulated_chip_carries_its_truth():
    from acsprov.simulate.raw import simulate_exposure

    spec = datasets.get_dataset("j8is01040")
    exp = simulate_exposure(spec, spec.members[1], seed=SEED)
    (ct,) = exp.chips
    assert set(ct.bias_dn) == {"C"} and np.all(ct.stripes == 0)  # HRC: no striping
    assert exp.primary["ROOTNAME"] == "j8is01j9q"
    assert exp.raw_hdulist()[1].data.shape == (1044, 1062)


@pytest.mark.slow
def test_wfc_full_frame_cr_split(tmp_path):
    from acsprov.simulate.raw import simulate_dataset

    files = simulate_dataset("jd1y04010", tmp_path, seed=SEED)
    assert files[0].name == "jd1y04010_asn.fits"
    ccdtab = tmp_path / "ccd.fits"
    reffiles.write_fits_atomic(reffiles.build_reference("4bb1536aj_ccd.fits"), ccdtab)
    with fits.open(tmp_path / "jd1y04rlq_raw.fits") as raw:
        assert [(h.name, h.ver) for h in raw[1:]] == [
            ("SCI", 1), ("ERR", 1), ("DQ", 1), ("SCI", 2), ("ERR", 2), ("DQ", 2)]
        s1, s2 = raw["SCI", 1], raw["SCI", 2]
        assert s1.data.shape == s2.data.shape == (2068, 4144)
        assert (s1.header["CCDCHIP"], s2.header["CCDCHIP"]) == (2, 1)
        assert (s1.header["LTV2"], s2.header["LTV2"]) == (0.0, 20.0)
        ph = raw[0].header
        assert (ph["CRSPLIT"], ph["CRCORR"], ph["PCTECORR"]) == (2, "PERFORM", "PERFORM")
        assert ph["BIASFILE"] == "jref$6641828tj_bia.fits"
        row = _ccdtab_row(ccdtab, "ABCD", 2, 2.0)
        virtual = s1.data[2048:, 24:4120].astype(float)  # on top of WFC2
        assert np.median(virtual[:, :2048]) == pytest.approx(row["CCDBIASC"], abs=10.0)
        assert np.median(virtual[:, 2048:]) == pytest.approx(row["CCDBIASD"], abs=10.0)
        row1 = _ccdtab_row(ccdtab, "ABCD", 1, 2.0)
        assert np.median(s2.data[:20, 24:2072]) == pytest.approx(row1["CCDBIASA"], abs=10.0)
    crs = []
    for root in ("jd1y04rlq", "jd1y04rnq"):
        with fits.open(tmp_path / f"{root}_flt.fits") as flt:
            assert flt["SCI", 1].data.shape == flt["SCI", 2].data.shape == (2048, 4096)
            # calacs completes PCTECORR in the _flc and CRCORR in the _crj, not here
            assert flt[0].header["PCTECORR"] == flt[0].header["CRCORR"] == "PERFORM"
            assert flt[0].header["BLEVCORR"] == flt[0].header["SINKCORR"] == "COMPLETE"
            crs.append((flt["DQ", 2].data & 8192) > 0)
    assert crs[0].any() and crs[1].any() and not np.array_equal(crs[0], crs[1])


def test_native_engine_reproduces_the_archive_flt(hrc_download, hrc_refs, tmp_path,
                                                  monkeypatch):
    """acsprov's calacs engine, run on the simulated raw file with the simulated
    reference files, lands on the simulator's archive product (made from the truth)."""
    calacs = pytest.importorskip("acsprov.calib.calacs")
    out, _ = hrc_download
    work = tmp_path / "work"
    work.mkdir()
    raw = work / "j8is01j2q_raw.fits"
    raw.write_bytes((out / "j8is01j2q_raw.fits").read_bytes())
    monkeypatch.setenv("jref", f"{hrc_refs}/")
    calacs.run_single(raw, write_trailer=False)
    with fits.open(work / "j8is01j2q_flt.fits") as ours, \
            fits.open(out / "j8is01j2q_flt.fits") as archive:
        good = ours["DQ", 1].data == 0
        diff = ours["SCI", 1].data.astype(float) - archive["SCI", 1].data.astype(float)
        assert abs(float(np.median(diff[good]))) < 0.2  # electrons: bias-level estimate
        assert float(np.percentile(np.abs(diff[good]), 99)) < 0.5
        # the archive's DQ also holds the CR rejection of the association (8192)
        assert np.array_equal(ours["DQ", 1].data & ~8192, archive["DQ", 1].data & ~8192)
