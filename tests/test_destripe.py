"""acs_destripe_plus with the native engine (Handbook Example 5)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from acsprov.actions.destripe.plus import destripe_plus
from acsprov.calib.calacs import run_native
from acsprov.environment import tool_environment
from acsprov.errors import BadInputError, ReferenceFileError
from acsprov.keywords import set_header
from acsprov.simulate import simulate_dataset


@pytest.fixture
def subarray(tmp_path, crds_cache, monkeypatch):
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    raws = {}
    for name in ("plain", "destriped"):
        files = simulate_dataset("jd5702jpq", tmp_path / name)
        for path in files:
            if not path.name.endswith("_raw.fits"):
                path.unlink()
        raws[name] = tmp_path / name / "jd5702jpq_raw.fits"
        # subarray headers lack these (Example 5 sets them); PCTECORR stays as archived
        set_header(raws[name], {"PCTETAB": "jref$8ch1518tj_cte.fits",
                                "DRKCFILE": "jref$9362018jj_dkc.fits"})
    return raws


def _row_level_scatter(path) -> float:
    sci = fits.getdata(path, ("SCI", 1)).astype(float)
    dq = fits.getdata(path, ("DQ", 1))
    rows = np.array([np.median(r[d == 0]) for r, d in zip(sci, dq, strict=True)])
    return float(np.std(np.diff(rows)))


def test_destriping_removes_row_stripes_and_records_the_silent_switch(subarray):
    raw = subarray["destriped"]
    assert fits.getval(raw, "PCTECORR") == "OMIT"
    result = destripe_plus(raw, cte_correct=True)
    names = sorted(p.name for p in result.products)
    assert "jd5702jpq_flt.fits" in names and "jd5702jpq_flc.fits" in names
    assert result.cte_corrected
    assert result.header_changes == [{"file": "jd5702jpq_blv_tmp.fits", "keyword": "PCTECORR",
                                      "before": "OMIT", "after": "PERFORM"}]
    assert fits.getval(raw, "PCTECORR") == "OMIT", "the user's raw file is not changed"
    plain = run_native(subarray["plain"])
    flt_plain = next(p for p in plain.products if p.name.endswith("_flt.fits"))
    # stripes are row-to-row level jumps: destriping must reduce their scatter
    assert _row_level_scatter(raw.with_name("jd5702jpq_flt.fits")) < \
        0.7 * _row_level_scatter(flt_plain)
    assert [i.role for i in result.intermediates] == ["blv_tmp", "blc_tmp"]
    assert all(i.deleted for i in result.intermediates)


def test_without_cte_only_flt(subarray):
    result = destripe_plus(subarray["destriped"], cte_correct=False)
    assert sorted(p.name for p in result.products if p.suffix == ".fits") == [
        "jd5702jpq_flt.fits"]
    assert not result.cte_corrected


def test_pre_sm4_and_hrc_are_refused(tmp_path, crds_cache, monkeypatch):
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    files = simulate_dataset("j8is01020", tmp_path)
    raw = next(p for p in files if p.name.endswith("_raw.fits"))
    with pytest.raises(BadInputError, match="destriping is for WFC data"):
        destripe_plus(raw)


def test_cte_without_pctetab_is_a_one_line_error(tmp_path, crds_cache, monkeypatch):
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    files = simulate_dataset("jd5702jpq", tmp_path)
    raw = next(p for p in files if p.name.endswith("_raw.fits"))
    with pytest.raises(ReferenceFileError, match="PCTETAB 'N/A'") as info:
        destripe_plus(raw, cte_correct=True)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "jd5702jpq_flc.fits").exists()
