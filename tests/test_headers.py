"""Header edits: validation, atomicity, before/after records."""

from __future__ import annotations

import os

import pytest
from astropy.io import fits
from helpers import make_raw

from acsprov.errors import BadInputError, RecipeError
from acsprov.fitsutil import set_empty_primary_bitpix, sha256sum
from acsprov.keywords import SWITCHES, parse_assignment, set_header, validate_edits


def test_table_3_7_switches_are_all_known():
    # Handbook Table 3.7 lists these seventeen switches.
    expected = {
        "DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "FLSHCORR", "CRCORR", "EXPSCORR",
        "SHADCORR", "PCTECORR", "DARKCORR", "FLATCORR", "PHOTCORR", "RPTCORR", "DRIZCORR",
        "SINKCORR", "GLINCORR", "LFLGCORR",
    }
    assert set(SWITCHES) == expected


def test_set_header_records_before_and_after(tmp_path):
    raw = make_raw(tmp_path / "j8is01j2q_raw.fits", BIASFILE="jref$old_bia.fits")
    before = sha256sum(raw)
    edit = set_header(raw, {"biasfile": "mybias.fits", "PCTECORR": "omit"})
    assert edit.sha256_before == before
    assert edit.sha256_after == sha256sum(raw) != before
    changes = {c.keyword: (c.before, c.after) for c in edit.changes}
    assert changes == {
        "BIASFILE": ("jref$old_bia.fits", "mybias.fits"),
        "PCTECORR": ("PERFORM", "OMIT"),
    }
    hdr = fits.getheader(raw)
    assert hdr["BIASFILE"] == "mybias.fits"
    assert hdr["PCTECORR"] == "OMIT"
    # the pixels are untouched
    assert fits.getdata(raw, "SCI")[2, 3] == 2 * 8 + 3


def test_set_header_without_change_leaves_file_identical(tmp_path):
    raw = make_raw(tmp_path / "a_raw.fits")
    before = sha256sum(raw)
    mtime = os.stat(raw).st_mtime_ns
    edit = set_header(raw, {"DQICORR": "PERFORM"})
    assert edit.changes == ()
    assert sha256sum(raw) == before
    assert os.stat(raw).st_mtime_ns == mtime


def test_set_header_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    # A locked git-annex file is a symlink to a read-only object: editing must never
    # write into the object itself.
    target = make_raw(tmp_path / "object.fits")
    original = sha256sum(target)
    link = tmp_path / "x_raw.fits"
    link.symlink_to(target)
    set_header(link, {"BIASFILE": "mybias.fits"})
    assert not link.is_symlink()
    assert sha256sum(target) == original
    assert fits.getval(link, "BIASFILE") == "mybias.fits"


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"PCTECORR": "MAYBE"}, "PCTECORR='MAYBE' is not a switch value"),
        ({"FOOCORR": "OMIT"}, "FOOCORR is not an ACS calibration switch"),
        ({"BIASFILE": "../etc/passwd"}, "is not a reference file name"),
        ({"BIASFILE": "/abs/bias.fits"}, "is not a reference file name"),
    ],
)
def test_bad_edits_are_refused_before_touching_the_file(tmp_path, edits, message):
    raw = make_raw(tmp_path / "a_raw.fits")
    before = sha256sum(raw)
    with pytest.raises(RecipeError, match=message):
        set_header(raw, edits)
    assert sha256sum(raw) == before


def test_non_acs_file_is_refused(tmp_path):
    raw = make_raw(tmp_path / "w_raw.fits", INSTRUME="WFC3")
    with pytest.raises(BadInputError, match="INSTRUME is 'WFC3', expected 'ACS'"):
        set_header(raw, {"BIASFILE": "mybias.fits"})


def test_truncated_file_is_refused_and_left_alone(tmp_path):
    raw = make_raw(tmp_path / "t_raw.fits", shape=(64, 64))
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) - 4000])
    cut = sha256sum(raw)
    with pytest.raises(BadInputError, match="not a readable FITS file"):
        set_header(raw, {"BIASFILE": "mybias.fits"})
    assert sha256sum(raw) == cut


def test_parse_assignment():
    assert parse_assignment("biasfile=mybias.fits") == ("BIASFILE", "mybias.fits")
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_assignment("BIASFILE")


def test_validate_edits_accepts_na_and_jref():
    assert validate_edits({"pctetab": "jref$8ch1518tj_cte.fits", "SHADFILE": "N/A"}) == {
        "PCTETAB": "jref$8ch1518tj_cte.fits",
        "SHADFILE": "N/A",
    }


def test_set_empty_primary_bitpix(tmp_path):
    path = tmp_path / "x_spt.fits"
    udl = fits.ImageHDU(data=[[1, 2]], name="UDL")
    primary = fits.PrimaryHDU()
    primary.header["ROOTNAME"] = "X"
    fits.HDUList([primary, udl]).writeto(path)
    assert fits.getheader(path)["BITPIX"] == 8  # what astropy writes
    set_empty_primary_bitpix(path, 16)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["ROOTNAME"] == "X"
        assert hdul["UDL"].data.tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="not a FITS value"):
        set_empty_primary_bitpix(path, 12)
    with_data = tmp_path / "data.fits"
    fits.PrimaryHDU(data=[[1.0]]).writeto(with_data)
    before = with_data.read_bytes()
    with pytest.raises(ValueError, match="not a data-less"):
        set_empty_primary_bitpix(with_data, 16)
    assert with_data.read_bytes() == before
