"""Property: whatever a raw file's header says, calacs processes it or refuses it cleanly.

Hypothesis mutates primary and SCI header keywords of a simulated HRC raw file (the
switches, reference keywords and the layout keywords calacs reads) and runs
``acsprov calacs`` on it through :func:`acsprov.cli.main`.  The command must either
succeed or end with one line and the exit status of an :class:`AcsprovError`, never
with an internal error (exit 70), and must leave the raw file as it was.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acsprov.cli import main
from acsprov.environment import tool_environment
from acsprov.fitsutil import sha256sum
from acsprov.keywords import REFERENCE_KEYWORDS, SWITCH_VALUES, SWITCHES

RAW = "j8is01j2q_raw.fits"

PRIMARY_KEYWORDS = (
    *SWITCHES, *REFERENCE_KEYWORDS, "INSTRUME", "DETECTOR", "NEXTEND", "CCDAMP", "CCDGAIN",
    "SUBARRAY", "EXPTIME", "EXPSTART", "FLASHDUR", "FLASHSTA", "OBSTYPE", "FILTER1",
    "FILTER2", "APERTURE", "ROOTNAME", "CRSPLIT", "NRPTEXP", "BIASLEVA", "BIASLEVC",
)
SCI_KEYWORDS = ("LTV1", "LTV2", "LTM1_1", "LTM2_2", "CCDCHIP", "BUNIT", "EXTVER",
                "SIZAXIS1", "SIZAXIS2")

#: Values a header card can hold: switch words, reference names, other text, numbers.
VALUES = st.one_of(
    st.sampled_from(SWITCH_VALUES),
    st.sampled_from(["N/A", "jref$nothere_bia.fits", "HRC", "WFC", "SBC", "", " ", "A",
                     "ABCD", "C", "T", "F", "ACS", "mybias.fits", "../x.fits"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=18),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)
MUTATION = st.one_of(
    st.tuples(st.just(0), st.sampled_from(PRIMARY_KEYWORDS), VALUES | st.none()),
    st.tuples(st.just(1), st.sampled_from(SCI_KEYWORDS), VALUES | st.none()),
)


@pytest.fixture(scope="module")
def hrc_raw(tmp_path_factory):
    from acsprov.simulate import simulate_dataset

    out = tmp_path_factory.mktemp("hrc")
    simulate_dataset("j8is01020", out, products=False)
    return out / RAW


def _mutate(path: Path, mutations: list[tuple[int, str, object]]) -> None:
    with fits.open(path, mode="update") as hdul:
        for ext, key, value in mutations:
            header = hdul[ext].header
            if value is None:
                header.remove(key, ignore_missing=True, remove_all=True)
            else:
                header[key] = value


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_headers_are_processed_or_refused_cleanly(mutations, hrc_raw, crds_cache,
                                                          monkeypatch):
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / RAW
        shutil.copy(hrc_raw, raw)
        _mutate(raw, mutations)
        before = sha256sum(raw)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["calacs", str(raw), "--engine", "native"])
        message = err.getvalue()
        assert code != 70, f"{mutations}: {message}"
        if code == 0:
            assert (Path(tmp) / "j8is01j2q_flt.fits").is_file()
        else:
            assert message.startswith("acsprov: error: ") and message.count("\n") == 1
            assert not (Path(tmp) / "j8is01j2q_flt.fits").exists()
        assert sha256sum(raw) == before
