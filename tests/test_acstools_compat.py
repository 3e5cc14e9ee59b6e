"""acsprov as a drop-in for acstools: calacs and destripe_plus, same names, same errors.

The calacs tests port the intent of acstools' former ``test_calacs.py`` (written here,
not copied): calibrating a raw exposure and an association through the module style
(``calacs.calacs(...)``) makes the products calacs makes, with every switch that ran
marked COMPLETE and the reference files named in the header; a missing input is an
``OSError``; a failing ``calacs.e`` is a ``subprocess.CalledProcessError``.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from acsprov.cli import main
from acsprov.environment import tool_environment
from acsprov.keywords import set_header
from acsprov.simulate import simulate_dataset


@pytest.fixture
def jref_env(crds_cache, monkeypatch):
    """The user's environment as acstools expects it: jref and CRDS_* set; no calacs.e."""
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))


@pytest.fixture
def hrc_asn(tmp_path, jref_env, monkeypatch):
    """An HRC repeat association (two members) in the current directory, bestrefs'd."""
    for path in simulate_dataset("j8is01020", tmp_path / "cal_fits"):
        if path.name.endswith(("_raw.fits", "_asn.fits")):
            shutil.copy(path, tmp_path / path.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- calacs ------------------------------------------------------------------------
def test_missing_input_is_an_oserror_as_in_acstools(tmp_path, monkeypatch):
    from acsprov import calacs

    monkeypatch.chdir(tmp_path)
    for call in (calacs, calacs.calacs):
        with pytest.raises(OSError, match="Input file not found: nothere_raw.fits"):
            call("nothere_raw.fits")
    with pytest.raises(IOError, match="Executable not found"):
        calacs.calacs("nothere_raw.fits", exec_path=str(tmp_path / "calacs.e"))


def test_the_command_line_still_says_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["calacs", "nothere_raw.fits"]) == 2
    err = capsys.readouterr().err
    assert err == "acsprov: error: Input file not found: nothere_raw.fits\n"


def test_a_failing_calacs_e_is_a_called_process_error(hrc_asn):
    from acsprov import calacs

    fake = hrc_asn / "calacs.e"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(subprocess.CalledProcessError) as caught:
        calacs.calacs("j8is01j2q_raw.fits", exec_path=str(fake))
    assert caught.value.returncode == 3
    assert not (hrc_asn / "j8is01j2q_flt.fits").exists()


def test_module_style_calibrates_an_exposure_and_an_association(hrc_asn):
    from acsprov import calacs

    raw = fits.getheader("j8is01j2q_raw.fits")
    result = calacs.calacs("j8is01020_asn.fits")
    assert result.engine == "native"
    names = {p.name for p in result.products}
    assert {"j8is01j2q_flt.fits", "j8is01j3q_flt.fits", "j8is01021_crj.fits"} <= names
    for name in ("j8is01j2q_flt.fits", "j8is01021_crj.fits"):
        hdr = fits.getheader(name)
        for switch in ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR"):
            if raw[switch] == "PERFORM":
                assert hdr[switch] == "COMPLETE", (name, switch)
        assert hdr["BIASFILE"] == raw["BIASFILE"]
        assert hdr["CAL_VER"]
    with fits.open("j8is01021_crj.fits") as crj, fits.open("j8is01j2q_flt.fits") as flt:
        assert crj["SCI", 1].header["NCOMBINE"] == 2
        assert crj["SCI", 1].data.shape == flt["SCI", 1].data.shape
        assert np.isfinite(crj["SCI", 1].data).all()
        # the combined image is the sum of the members' exposure times
        assert crj[0].header["EXPTIME"] == pytest.approx(
            2 * flt[0].header["EXPTIME"], rel=0.01)
    # recorded: one calacs activity naming the association and its products
    (doc,) = (hrc_asn / "prov").glob("*.json")
    activities = json.loads(doc.read_text())["activity"].values()
    assert [a["prov:type"]["$"] for a in activities] == ["acsprov:calacs"]


def test_calling_the_module_is_calling_the_function():
    import acsprov
    from acsprov import calacs
    from acsprov.calacs import calacs as function

    assert callable(calacs) and calacs.calacs is function
    assert acsprov.calacs is calacs
    assert list(inspect.signature(function).parameters)[:9] == [
        "input_file", "exec_path", "time_stamps", "temp_files", "verbose", "debug",
        "quiet", "single_core", "exe_args"]


# -- destripe_plus -----------------------------------------------------------------
def _acstools_destripe_plus():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from acstools.acs_destripe_plus import destripe_plus
    return destripe_plus


def test_destripe_plus_has_acstools_signature():
    from acsprov.acs_destripe_plus import destripe_plus

    ours = inspect.signature(destripe_plus).parameters
    theirs = inspect.signature(_acstools_destripe_plus()).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == \
        [(p.name, p.default, p.kind) for p in theirs.values()]


def test_destripe_plus_errors_are_acstools(tmp_path, jref_env, monkeypatch):
    from acsprov import acs_destripe_plus

    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError, match="does not exist"):
        acs_destripe_plus.destripe_plus("jd5702jpq_raw.fits")
    for path in simulate_dataset("j8is01020", tmp_path / "cal_fits"):
        if path.name == "j8is01j2q_raw.fits":
            shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ValueError, match="WFC"):  # an HRC exposure
        acs_destripe_plus.destripe_plus("j8is01j2q_raw.fits")


def test_destripe_plus_from_python_is_recorded(tmp_path, jref_env, monkeypatch):
    from acsprov import acs_destripe_plus

    for path in simulate_dataset("jd5702jpq", tmp_path / "cal_fits"):
        if path.name.endswith("_raw.fits"):
            shutil.copy(path, tmp_path / path.name)
    raw = tmp_path / "jd5702jpq_raw.fits"
    set_header(raw, {"PCTETAB": "jref$8ch1518tj_cte.fits",
                     "DRKCFILE": "jref$9362018jj_dkc.fits"})
    monkeypatch.chdir(tmp_path)
    assert acs_destripe_plus.destripe_plus("jd5702jpq_raw.fits", maxiter=10,
                                           cte_correct=False, verbose=False) is None
    assert (tmp_path / "jd5702jpq_flt.fits").is_file()
    assert not (tmp_path / "jd5702jpq_flc.fits").exists()
    (doc,) = (tmp_path / "prov").glob("*.json")
    data = json.loads(doc.read_text())
    (act,) = data["activity"].values()
    assert act["prov:type"]["$"] == "acsprov:destripe"
    assert json.loads(act["acsprov:parameters"])["options"] == {"maxiter": 10}  # the call's
    params = json.loads(act["acsprov:destripe_parameters"])  # as destripe_plus ran them
    assert params["maxiter"] == 10 and params["cte_correct"] is False
    assert params["suffix"] == "strp" and params["sigrej"] == 2.0
    made = {e.get("acsprov:path") for e in data["entity"].values()}
    assert "jd5702jpq_flt.fits" in made and "jd5702jpq_raw.fits" in made
    # the same call again refuses to overwrite, as acstools does without clobber...
    with pytest.raises(Exception, match="exist"):
        acs_destripe_plus.destripe_plus("jd5702jpq_raw.fits", cte_correct=False)
    # ...and replaces the products with clobber=True
    acs_destripe_plus.destripe_plus("jd5702jpq_raw.fits", cte_correct=False, clobber=True)
    runs = [a for d in (tmp_path / "prov").glob("*.json")
            for a in json.loads(d.read_text())["activity"].values()]
    statuses = [a["acsprov:status"] for a in sorted(runs, key=lambda a: a["prov:startTime"])]
    assert statuses == ["ok", "error", "ok"]  # every call recorded, the refused one too


# -- crds after `acsprov env` ------------------------------------------------------
def test_crds_bestrefs_sync_references_after_acsprov_env(tmp_path, crds_cache):
    """The handbook's and STScI notebooks' form, on the local cache acsprov set up."""
    for path in simulate_dataset("j8is01020", tmp_path / "cal_fits"):
        if path.name == "j8is01j2q_raw.fits":
            shutil.copy(path, tmp_path / path.name)
    raw = tmp_path / "j8is01j2q_raw.fits"
    set_header(raw, {"BIASFILE": "N/A"})
    bindir = Path(sys.executable).parent
    script = (f'eval "$("{bindir}/acsprov" env --workdir "{crds_cache.parent}")" && '
              'crds bestrefs --files j8is01j2q_raw.fits --sync-references=1 '
              '--update-bestrefs')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS")}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Readonly cache" not in proc.stdout + proc.stderr
    assert fits.getval(raw, "BIASFILE").startswith("jref$")
    assert "CRDS_READONLY_CACHE" not in subprocess.run(
        [str(bindir / "acsprov"), "env", "--workdir", str(crds_cache.parent)],
        capture_output=True, text=True, check=True, env=env).stdout
