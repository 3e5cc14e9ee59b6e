"""The command line: one-line errors with non-zero exits, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_raw

from acsprov.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_dataset(capsys, tmp_path):
    code, _, err = _run(capsys, "reprocess", "nosuchdata", "--workdir", str(tmp_path))
    assert code == 2
    assert err.startswith("acsprov: error: unknown dataset 'nosuchdata'")
    assert err.count("\n") == 1
    assert not (tmp_path / "nosuchdata").exists()


def test_recipe_with_unknown_switch_value(capsys, tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "bad.yaml").write_text(
        "name: bad\ndatasets: [jd1y04010]\nruns:\n  - name: r\n    steps:\n"
        "      - set_header: {files: [a_raw.fits], set: {PCTECORR: SOMETIMES}}\n"
    )
    monkeypatch.setenv("ACSPROV_RECIPES", str(recipes))
    code, _, err = _run(capsys, "reprocess", "bad", "--workdir", str(tmp_path / "w"))
    assert code == 2
    assert "PCTECORR='SOMETIMES' is not a switch value" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "w").exists()


def test_set_header_command(capsys, tmp_path):
    raw = make_raw(tmp_path / "x_raw.fits")
    code, out, _ = _run(capsys, "set-header", str(raw), "PCTECORR=OMIT", "biasfile=mybias.fits")
    assert code == 0
    assert "PCTECORR 'PERFORM' -> 'OMIT'" in out
    assert "BIASFILE 'N/A' -> 'mybias.fits'" in out


def test_set_header_bad_value(capsys, tmp_path):
    raw = make_raw(tmp_path / "x_raw.fits")
    code, _, err = _run(capsys, "set-header", str(raw), "DARKCORR=perhaps")
    assert code == 2
    assert "DARKCORR='perhaps' is not a switch value" in err


def test_set_header_missing_file(capsys, tmp_path):
    code, _, err = _run(capsys, "set-header", str(tmp_path / "none_raw.fits"), "DARKCORR=OMIT")
    assert code == 2
    assert "no such raw file" in err


def test_usage_error_is_one_line(capsys):
    code, _, err = _run(capsys, "reprocess")
    assert code == 2
    assert err.startswith("acsprov: error: Missing argument")


@pytest.mark.parametrize("args", [["--help"], ["reprocess", "--help"]])
def test_help(capsys, args):
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert "Usage:" in out


def test_console_script_exit_status(tmp_path):
    exe = Path(sys.executable).parent / "acsprov"
    proc = subprocess.run([str(exe), "simulate", "nosuch", "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("acsprov: error:")
