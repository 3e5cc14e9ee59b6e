"""updatewcs with the local IDCTAB/NPOLFILE/D2IMFILE, offline and atomic."""

from __future__ import annotations

import pytest
from astropy.io import fits

from acsprov.actions.updatewcs import distortion_references, update_wcs
from acsprov.environment import tool_environment
from acsprov.errors import ReferenceFileError
from acsprov.fitsutil import sha256sum
from acsprov.simulate import simulate_dataset


@pytest.fixture
def flt(tmp_path, crds_cache, monkeypatch):
    env = tool_environment(crds_cache)
    monkeypatch.setenv("jref", env["jref"])
    files = simulate_dataset("jd5702jpq", tmp_path)
    return next(p for p in files if p.name.endswith("_flt.fits")), env["jref"]


def test_updatewcs_applies_the_local_distortion_model(flt, capsys):
    path, jref = flt
    refs = distortion_references(path, jref)
    assert set(refs) == {"IDCTAB", "NPOLFILE", "D2IMFILE"}
    before = fits.getheader(path, ("SCI", 1))
    assert "A_ORDER" not in before
    capsys.readouterr()
    update_wcs(path)
    lines = capsys.readouterr().out.splitlines()  # Example 5's file: each stwcs line once
    assert any(line.startswith("- IDCTAB: Distortion model from row") for line in lines)
    assert len(lines) == len(set(lines))
    after = fits.getheader(path, ("SCI", 1))
    idc = fits.getval(path, "IDCTAB").split("$")[-1].replace("_idc.fits", "")
    assert after["WCSNAME"] == f"IDC_{idc}"
    assert after["A_ORDER"] >= 2  # SIP polynomial from the IDCTAB
    assert after["CTYPE1"].endswith("-SIP")


def test_missing_idctab_is_refused_and_file_untouched(flt):
    path, jref = flt
    with fits.open(path, mode="update") as hdul:  # a plain test file, not annexed
        hdul[0].header["IDCTAB"] = "N/A"
    before = sha256sum(path)
    with pytest.raises(ReferenceFileError, match="IDCTAB is N/A"):
        distortion_references(path, jref)
    assert sha256sum(path) == before


def test_missing_reference_file_is_named(flt):
    path, jref = flt
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["NPOLFILE"] = "jref$nosuch_npl.fits"
    with pytest.raises(ReferenceFileError, match="NPOLFILE=jref\\$nosuch_npl.fits not found"):
        distortion_references(path, jref)
