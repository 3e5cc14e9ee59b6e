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


#: Ends through exit_quickly with an atexit handler, output and an object whose
#: finaliser speaks only if the modules are torn down; with a child process left
#: running when asked.
QUICK_EXIT = """
import atexit, subprocess, sys
from acsprov.cli import exit_quickly
class Teardown:
    def __del__(self):
        print("teardown", flush=True)
keep = Teardown()
atexit.register(lambda: print("atexit", flush=True))
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(2)  # left running: its idle workers must not hold the exit
pool.submit(print, "pooled", flush=True).result()
child = subprocess.Popen(["sleep", "0.2"]) if sys.argv[1:] == ["child"] else None
print("done", end=" ")
exit_quickly(3)
"""


@pytest.mark.parametrize("child", [False, True])
def test_the_command_exits_quickly_unless_a_child_process_is_there(child):
    proc = subprocess.run([sys.executable, "-c", QUICK_EXIT, *(["child"] if child else [])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout.split() == (["pooled", "done", "atexit", "teardown"] if child
                                   else ["pooled", "done", "atexit"])


def test_the_console_script_is_the_quick_exit():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "acsprov"]
    assert script.value == "acsprov.cli:run"
    proc = subprocess.run([sys.executable, "-m", "acsprov", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "acsprov" in proc.stdout


def test_make_install_compiles_every_module_to_current_bytecode():
    """What the import system would read instead of compiling the source again (the
    pyc header: source modification time and size, in the default invalidation mode)."""
    import importlib.util

    import acsprov

    stale = []
    for source in Path(acsprov.__file__).parent.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        stat = source.stat()
        header = cached.read_bytes()[:16] if cached.is_file() else b""
        if (len(header) < 16 or int.from_bytes(header[8:12], "little") != int(stat.st_mtime)
                or int.from_bytes(header[12:16], "little") != stat.st_size & 0xFFFFFFFF):
            stale.append(source.name)
    assert not stale, f"not compiled (make install compiles them): {sorted(stale)[:5]}"
