"""Obtaining data: MAST's download API served on loopback, and the fallback rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_asn, make_raw
from loopback import serve_mast

from acsprov.errors import BadInputError, DatasetError, SourceError
from acsprov.fitsutil import sha256sum
from acsprov.sources import obtain


@pytest.fixture
def mast(tmp_path):
    """A loopback server answering MAST's download API from a directory."""
    root = tmp_path / "mast"
    root.mkdir()
    with serve_mast(root) as server:
        yield root, server.url, server.requests


def _association(root: Path) -> None:
    make_asn(root / "j8is01020_asn.fits",
             [("J8IS01J2Q", "EXP-RPT", True), ("J8IS01J3Q", "EXP-RPT", True),
              ("J8IS01021", "PROD-RPT", True)])
    for name in ("j8is01j2q", "j8is01j3q"):
        make_raw(root / f"{name}_raw.fits")
        make_raw(root / f"{name}_flt.fits")


def test_download_from_mast_api(mast, tmp_path):
    root, url, requests = mast
    _association(root)
    said = []
    got = obtain("j8is01020", tmp_path / "out", source="mast", base_url=url, say=said.append)
    assert got.source == "mast" and got.origin == url
    names = sorted(p.name for p in got.files)
    assert names == ["j8is01020_asn.fits", "j8is01j2q_flt.fits", "j8is01j2q_raw.fits",
                     "j8is01j3q_flt.fits", "j8is01j3q_raw.fits"]
    for path in got.files:
        assert sha256sum(path) == sha256sum(root / path.name)
    assert "mast:HST/product/j8is01j2q_raw.fits" in requests
    assert any("from MAST" in line for line in said)


def test_auto_uses_mast_when_it_answers(mast, tmp_path, monkeypatch):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    root, url, _ = mast
    _association(root)
    got = obtain("j8is01020", tmp_path / "out", source="auto", base_url=url, say=lambda m: None)
    assert got.source == "mast"


def test_hostile_memname_from_archive_is_refused(mast, tmp_path):
    root, url, requests = mast
    make_asn(root / "j8is01020_asn.fits", [("../x", "EXP-RPT", True)])
    out = tmp_path / "deep" / "out"
    with pytest.raises(BadInputError, match="not a plain rootname"):
        obtain("j8is01020", out, source="mast", base_url=url, say=lambda m: None)
    assert sorted(p.name for p in out.parent.rglob("*") if p.is_file()) == [
        "j8is01020_asn.fits"
    ]
    assert not any(".." in r for r in requests)


def test_missing_raw_file_is_an_error(mast, tmp_path):
    root, url, _ = mast
    make_asn(root / "j8is01020_asn.fits", [("J8IS01J2Q", "EXP-RPT", True)])
    with pytest.raises(SourceError, match="HTTP 404 for j8is01j2q_raw.fits"):
        obtain("j8is01020", tmp_path / "out", source="mast", base_url=url, say=lambda m: None)


def test_mast_only_source_fails_when_unreachable(tmp_path):
    with pytest.raises(SourceError, match="cannot be reached"):
        obtain("j8is01020", tmp_path, source="mast", base_url="http://127.0.0.1:9",
               say=lambda m: None)


def test_auto_falls_back_to_the_simulator_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    said: list[str] = []
    got = obtain("j8is01020", tmp_path, source="auto", base_url="http://127.0.0.1:9",
                 say=said.append)
    assert got.source == "simulate"
    assert any("SIMULATOR" in line for line in said)
    assert any("SIMULATED" in line for line in said)
    assert (tmp_path / "j8is01020_asn.fits").is_file()


@pytest.mark.parametrize("name", ["../etc", "JD1Y0401", "jd1y04010/..", ""])
def test_bad_dataset_names(tmp_path, name):
    with pytest.raises(DatasetError, match="not an HST dataset name"):
        obtain(name, tmp_path, source="simulate", say=lambda m: None)


def test_simulator_refuses_unknown_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not know dataset 'ja0b01010'"):
        obtain("ja0b01010", tmp_path, source="simulate", say=lambda m: None)
