"""The native engine against real calacs 10.5.0 output (the shared golden sub2k case).

The inputs are regenerated with the shared ``make_synthetic.py`` and proven identical
to those calacs saw (sha256), then calibrated by the native engine and compared with
calacs's ``_flt``: DQ identical, SCI and ERR within rtol 1e-5 / atol 1e-3, switch
keywords equal.  calacs's ``_flt`` is the same with PCTECORR on or off, and the
native engine leaves PCTECORR as it finds it (the CTE product is another task).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits import FITSDiff

from acsprov.calib.calacs import run_single

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (GOLDEN / "make_synthetic.py").is_file(),
        reason=f"shared golden data not found at {GOLDEN} (expected beside the clone)",
    ),
]

SWITCHES = ("DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "FLSHCORR", "CRCORR", "EXPSCORR",
            "SHADCORR", "PCTECORR", "DRIZCORR", "DARKCORR", "FLATCORR", "PHOTCORR", "RPTCORR",
            "SINKCORR", "GLINCORR", "LFLGCORR")
VOLATILE = ["FILENAME", "DATE", "IRAF-TLM", "FITSDATE", "OPUS_VER", "CAL_VER", "PROCTIME",
            "HISTORY", "ORIGIN", "COMMENT"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_sums(directory: Path, listing: Path) -> None:
    for line in listing.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split()
        assert _sha256(directory / name) == expected, f"{name} differs from the golden input"


@pytest.fixture(scope="module")
def sub2k(tmp_path_factory) -> Path:
    """Regenerated golden references and sub2k raw (PCTECORR=PERFORM, as calacs saw it)."""
    work = tmp_path_factory.mktemp("golden")
    script = GOLDEN / "make_synthetic.py"
    for args in (["refs", "--out", "jref"], ["case", "--case", "sub2k", "--out", "in"]):
        subprocess.run([sys.executable, str(script), *args], cwd=work, check=True,
                       capture_output=True)
    _check_sums(work / "jref", GOLDEN / "sha256-refs.txt")
    _check_sums(work / "in", GOLDEN / "sha256-sub2k-inputs.txt")
    return work


def test_sub2k_flt_matches_calacs(sub2k, monkeypatch):
    monkeypatch.setenv("jref", f"{sub2k / 'jref'}/")
    result = run_single(sub2k / "in" / "jsyn03c1q_raw.fits", outdir=sub2k / "out")
    golden = GOLDEN / "sub2k_cte" / "jsyn03c1q_flt.fits.gz"
    with fits.open(result.flt) as ours, fits.open(golden) as ref:
        assert [(h.name, h.ver) for h in ours] == [(h.name, h.ver) for h in ref]
        for key in SWITCHES:
            assert ours[0].header[key] == ref[0].header[key], key
        for ext in ("SCI", "ERR", "DQ"):
            a, b = ours[ext, 1].data, ref[ext, 1].data
            assert a.shape == b.shape
            if ext == "DQ":
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
        diff = FITSDiff(ours, ref, ignore_keywords=VOLATILE, ignore_comments=["*"],
                        rtol=1e-5, atol=1e-3)
        assert diff.identical, diff.report()
    trailer = result.trailer.read_text()
    for line in ("DQICORR  COMPLETE", "BIASCORR COMPLETE", "BLEVCORR COMPLETE",
                 "SINKCORR COMPLETE", "DARKCORR COMPLETE", "FLATCORR COMPLETE",
                 "PHOTCORR COMPLETE", "Sink pixels flagged = 920"):
        assert line in trailer
