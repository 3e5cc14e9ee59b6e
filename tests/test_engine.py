"""Engine selection and the hstcal path, with a stand-in calacs.e that records its arguments."""

from __future__ import annotations

import json
import stat
import sys

import pytest
from helpers import make_raw

from acsprov.cli import main
from acsprov.engine import resolve_engine, run_calacs
from acsprov.errors import BadInputError

STAND_IN = """#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["CALACS_LOG"], "a") as fh:
    fh.write(json.dumps(args) + "\\n")
if os.environ.get("CALACS_BIASFILE"):  # a reference named without a directory
    if not os.path.isfile(os.environ["CALACS_BIASFILE"]):
        sys.exit(2)  # calacs.e: "BIASFILE not found", status 2
if "--version" in args:
    print("10.5.0 (stand-in)")
    sys.exit(0)
for item in args[-1].split(","):
    if item.endswith("_raw.fits"):
        root = item[: -len("_raw.fits")]
        shutil.copy(item, root + "_flt.fits")
        open(root + ".tra", "w").write("stand-in trailer\\n")
sys.exit(int(os.environ.get("CALACS_STATUS", "0")))
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "calacs.e"
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("CALACS_LOG", str(log))
    monkeypatch.chdir(tmp_path)
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_auto_picks_calacs_on_path(stand_in, tmp_path):
    make_raw(tmp_path / "j8is01j2q_raw.fits")
    assert resolve_engine("auto") == "hstcal"
    result = run_calacs("j8is01j2q_raw.fits", time_stamps=True, verbose=True)
    assert result.engine == "hstcal"
    assert result.engine_version == "10.5.0 (stand-in)"
    calls = [c for c in stand_in() if "--version" not in c]
    assert calls == [["-t", "-v", "j8is01j2q_raw.fits"]]
    assert sorted(p.name for p in result.products) == ["j8is01j2q.tra", "j8is01j2q_flt.fits"]


def test_threads_are_passed_as_calacs_spells_them(stand_in, tmp_path, capsys):
    make_raw(tmp_path / "j8is01j2q_raw.fits")
    assert main(["calacs", "--nthreads", "2", "j8is01j2q_raw.fits"]) == 0
    assert main(["calacs", "-1", "j8is01j2q_raw.fits"]) == 0
    calls = [c for c in stand_in() if "--version" not in c]
    assert calls[0] == ["j8is01j2q_raw.fits", "--nthreads", "2"]
    assert calls[1] == ["-1", "j8is01j2q_raw.fits"]
    assert "hstcal engine" in capsys.readouterr().out


def test_calacs_call_is_recorded(stand_in, tmp_path):
    import acsprov

    make_raw(tmp_path / "j8is01j2q_raw.fits", BPIXTAB="bpx.fits", DQICORR="PERFORM")
    make_raw(tmp_path / "bpx.fits")
    acsprov.calacs("j8is01j2q_raw.fits")
    (doc,) = (tmp_path / "prov").glob("*.json")
    data = json.loads(doc.read_text())
    (activity,) = data["activity"].values()
    assert activity["acsprov:engine"] == "hstcal"
    paths = {e["acsprov:path"] for e in data["entity"].values() if "acsprov:path" in e}
    assert {"j8is01j2q_raw.fits", "j8is01j2q_flt.fits", "bpx.fits"} <= paths
    # calacs.e's product carries the pointer back to its activity
    from astropy.io import fits

    (activity_id,) = data["activity"]
    assert fits.getval(tmp_path / "j8is01j2q_flt.fits", "PROVACT") == activity_id.split(":")[1]
    assert len(data["wasDerivedFrom"]) >= 1


def test_calacs_e_runs_beside_its_input(stand_in, tmp_path, monkeypatch):
    """Handbook Example 1 sets BIASFILE = 'mybias.fits', a file beside the raw file:
    calacs.e reads it from its working directory, so it must run in the input's."""
    run = tmp_path / "run"
    run.mkdir()
    make_raw(run / "j8is01j2q_raw.fits", BIASFILE="mybias.fits")
    make_raw(run / "mybias.fits")
    monkeypatch.setenv("CALACS_BIASFILE", "mybias.fits")
    result = run_calacs(run / "j8is01j2q_raw.fits", engine="hstcal")  # from tmp_path
    assert [c for c in stand_in() if "--version" not in c] == [["j8is01j2q_raw.fits"]]
    assert sorted(p.name for p in result.products) == ["j8is01j2q.tra", "j8is01j2q_flt.fits"]
    assert all(p.parent == run for p in result.products)


def test_failing_calacs_is_an_error(stand_in, tmp_path, monkeypatch, capsys):
    make_raw(tmp_path / "j8is01j2q_raw.fits")
    monkeypatch.setenv("CALACS_STATUS", "2")
    assert main(["calacs", "j8is01j2q_raw.fits"]) == 7
    assert "calacs.e exited with status 2" in capsys.readouterr().err


def test_hstcal_engine_needs_calacs(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInputError, match="calacs.e is not on PATH"):
        resolve_engine("hstcal")
    assert resolve_engine("auto") == "native"


def test_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError, match="Input file not found"):
        run_calacs("none_raw.fits", engine="native")
    make_raw(tmp_path / "x_flt.fits")
    with pytest.raises(BadInputError, match="takes _raw.fits or _asn.fits"):
        run_calacs("x_flt.fits", engine="native")
    with pytest.raises(BadInputError, match="unknown engine"):
        run_calacs("x_flt.fits", engine="fast")
