"""Bad input, case by case, through the real command: one line, non-zero, files untouched.

Each row of :data:`CASES` prepares a directory from a simulated HRC association
(j8is01020: two raw files and the table), runs ``acsprov`` as a separate process and
checks: the exit status, a single line on stderr naming the problem (no traceback),
every file that was there before unchanged (sha256), and no product left behind.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from helpers import make_asn

from acsprov.environment import tool_environment
from acsprov.fitsutil import sha256sum

ACSPROV = str(Path(sys.executable).parent / "acsprov")
RAW = "j8is01j2q_raw.fits"
ASN = "j8is01020_asn.fits"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The simulated j8is01020 download (asn, two raw files), made once."""
    from acsprov.simulate import simulate_dataset

    out = tmp_path_factory.mktemp("j8is01020")
    simulate_dataset("j8is01020", out, products=False)
    for spt in out.glob("*_spt.fits"):
        spt.unlink()
    return out


def _set(path: Path, **keywords: object) -> None:
    with fits.open(path, mode="update") as hdul:
        for key, value in keywords.items():
            hdul[0].header[key] = value


def _raw(d: Path, a: Path) -> list[str]:
    shutil.copy(a / RAW, d / RAW)
    return ["calacs", str(d / RAW)]


def truncated(d: Path, a: Path) -> list[str]:
    (d / RAW).write_bytes((a / RAW).read_bytes()[:1_000_000])
    return ["calacs", str(d / RAW)]


def not_fits(d: Path, a: Path) -> list[str]:
    (d / RAW).write_bytes(np.random.default_rng(5).bytes(100_000))
    return ["calacs", str(d / RAW)]


def corrupt_header(d: Path, a: Path) -> list[str]:
    data = bytearray((a / RAW).read_bytes())
    at = data.find(b"NAXIS2  =", 2880)  # SCI,1 claims far more rows than the file holds
    data[at + 10:at + 30] = b"%20d" % 99999
    (d / RAW).write_bytes(bytes(data))
    return ["calacs", str(d / RAW)]


def wfc3(d: Path, a: Path) -> list[str]:
    args = _raw(d, a)
    _set(d / RAW, INSTRUME="WFC3")
    return args


def missing_extension(d: Path, a: Path) -> list[str]:
    with fits.open(a / RAW) as hdul:  # every extension there, but none is SCI,1
        hdul["SCI", 1].header["EXTNAME"] = "OTHER"
        hdul.writeto(d / RAW)
    return ["calacs", str(d / RAW)]


def bad_switch_argument(d: Path, a: Path) -> list[str]:
    _raw(d, a)
    return ["set-header", str(d / RAW), "DARKCORR=perhaps"]


def bad_switch_in_header(d: Path, a: Path) -> list[str]:
    args = _raw(d, a)
    _set(d / RAW, DARKCORR="SOMETIMES")
    return args


def missing_reference(d: Path, a: Path) -> list[str]:
    args = _raw(d, a)
    _set(d / RAW, BIASFILE="jref$nothere_bia.fits")
    return args


def wrong_detector_reference(d: Path, a: Path) -> list[str]:
    args = _raw(d, a)
    jref = Path(os.environ["jref"])
    wfc_bias = next(p for p in sorted(jref.glob("*_bia.fits"))
                    if fits.getval(p, "DETECTOR") == "WFC")
    _set(d / RAW, BIASFILE=f"jref${wfc_bias.name}")
    return args


def missing_member(d: Path, a: Path) -> list[str]:
    shutil.copy(a / ASN, d / ASN)
    shutil.copy(a / RAW, d / RAW)  # j8is01j3q_raw.fits is not there
    return ["calacs", str(d / ASN)]


def _hostile(d: Path, a: Path, memname: str) -> list[str]:
    shutil.copy(a / RAW, d / RAW)
    shutil.copy(a / "j8is01j3q_raw.fits", d / "j8is01j3q_raw.fits")
    make_asn(d / ASN, [(memname, "EXP-RPT", True), ("J8IS01J3Q", "EXP-RPT", True),
                       ("J8IS01021", "PROD-RPT", True)])
    return ["calacs", str(d / ASN)]


def hostile_relative(d: Path, a: Path) -> list[str]:
    return _hostile(d, a, "../x")


def hostile_absolute(d: Path, a: Path) -> list[str]:
    return _hostile(d, a, "/etc/passwd")


def recipe_bad_switch(d: Path, a: Path) -> list[str]:
    (d / "bad.yaml").write_text(
        "name: bad\ndatasets: [j8is01020]\nruns:\n  - name: r\n    steps:\n"
        "      - set_header: {files: [j8is01j2q_raw.fits], set: {FLATCORR: MAYBE}}\n")
    return ["reprocess", "bad", "--workdir", str(d / "work")]


def disk_full_product(d: Path, a: Path) -> list[str]:
    return _raw(d, a)  # the raw file fits under the limit; the 10 MB _flt does not


def disk_full_header_edit(d: Path, a: Path) -> list[str]:
    _raw(d, a)
    return ["set-header", str(d / RAW), "DARKCORR=OMIT"]


def cut_at_an_extension(d: Path, a: Path) -> list[str]:
    """Cut exactly where an extension starts: every HDU left is complete, but fewer
    than the primary header's NEXTEND."""
    with fits.open(a / RAW) as hdul:
        start = hdul.fileinfo(3)["hdrLoc"]
    (d / RAW).write_bytes((a / RAW).read_bytes()[:start])
    return ["calacs", str(d / RAW)]


def nan_in_sci(d: Path, a: Path) -> list[str]:
    with fits.open(a / RAW) as hdul:
        data = hdul["SCI", 1].data.astype(np.float32)
        data[10, 10] = np.nan
        hdul["SCI", 1].data = data
        hdul.writeto(d / RAW)
    return ["calacs", str(d / RAW)]


def negative_seed(d: Path, a: Path) -> list[str]:
    return ["simulate", "j8is01020", "--out", str(d / "out"), "--seed", "-5"]


def superscript_seed(d: Path, a: Path) -> list[str]:
    return ["batch", "j8is01merged@\u00b2", "--workdir", str(d / "work"), "--no-progress"]


def read_only_directory(d: Path, a: Path) -> list[str]:
    """A directory the user may not write in (root may write anywhere but /sys)."""
    if os.geteuid() == 0:
        return ["simulate", "j8is01020", "--out", "/sys/acsprov-test-read-only"]
    (d / "ro").mkdir(mode=0o555)
    return ["simulate", "j8is01020", "--out", str(d / "ro" / "out")]


@dataclass(frozen=True)
class Case:
    prepare: Callable[[Path, Path], list[str]]
    status: int
    message: str
    file_size_limit: int | None = None
    """RLIMIT_FSIZE of the acsprov process: writes beyond it fail with EFBIG."""


CASES = {
    "truncated FITS": Case(truncated, 2, f"{RAW}: not a readable FITS file"),
    "not FITS at all": Case(not_fits, 2, f"{RAW}: not a readable FITS file (No SIMPLE card"),
    "corrupt header (NAXIS2)": Case(corrupt_header, 2, f"{RAW}: not a readable FITS file"),
    "non-ACS file": Case(wfc3, 2, "INSTRUME is 'WFC3', expected 'ACS'"),
    "raw file missing an extension": Case(missing_extension, 2,
                                          f"{RAW} has no SCI extension with EXTVER=1"),
    "unknown switch value (argument)": Case(bad_switch_argument, 2,
                                            "DARKCORR='perhaps' is not a switch value; use "
                                            "one of PERFORM, OMIT, COMPLETE, SKIPPED"),
    "unknown switch value (header)": Case(bad_switch_in_header, 2,
                                          "keyword DARKCORR = 'SOMETIMES' is invalid"),
    "unknown switch value (recipe)": Case(recipe_bad_switch, 2,
                                          "FLATCORR='MAYBE' is not a switch value"),
    "missing reference file": Case(missing_reference, 3,
                                   "missing reference file(s): BIASFILE "
                                   "'jref$nothere_bia.fits' not found"),
    "reference file for the wrong detector": Case(
        wrong_detector_reference, 3,
        f"{RAW}: reference file(s) for another detector than HRC: BIASFILE 'jref$"),
    "association with a missing member": Case(
        missing_member, 2, "member J8IS01J3Q is marked present (MEMPRSNT) but "
                           "j8is01j3q_raw.fits is not in"),
    "hostile MEMNAME ../x": Case(hostile_relative, 2,
                                 "MEMNAME '../x' is not a plain rootname"),
    "hostile MEMNAME /etc/passwd": Case(hostile_absolute, 2,
                                        "MEMNAME '/etc/passwd' is not a plain rootname"),
    "file cut at an extension boundary": Case(
        cut_at_an_extension, 2, "NEXTEND says 3 extensions, the file has 2"),
    "NaN in SCI": Case(nan_in_sci, 2, "SCI,1 holds NaN or infinite values"),
    "simulate --seed -5": Case(negative_seed, 2, "-5 is not in the range 0<=x<=4294967295"),
    "batch NAME@superscript": Case(superscript_seed, 2,
                                   "the seed after '@' must be a whole number >= 0"),
    "read-only directory": Case(read_only_directory, 10,
                                "(check its permissions; nothing else was changed)"),
    "disk full while writing products": Case(
        disk_full_product, 10, "cannot write it (File too large); nothing was changed",
        file_size_limit=3_000_000),
    "disk full while editing a header": Case(
        disk_full_header_edit, 2, f"{RAW}: could not write the edited header",
        file_size_limit=1_000_000),
}


def _state(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256sum(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_in_one_line(name, tmp_path, archive, crds_cache, monkeypatch):
    case = CASES[name]
    env = tool_environment(crds_cache)
    monkeypatch.setenv("jref", env["jref"])  # for the preparation
    directory = tmp_path / "case"
    directory.mkdir()
    args = case.prepare(directory, archive)
    before = _state(directory)
    limit = case.file_size_limit

    def limit_file_size() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [ACSPROV, *args], cwd=directory, capture_output=True, text=True, check=False,
        timeout=300, preexec_fn=limit_file_size,
        env={**os.environ, **env, "ACSPROV_ENGINE": "native", "ACSPROV_RECIPES": str(directory),
             "ACSPROV_CRDS_PATH": str(crds_cache)})
    assert proc.returncode == case.status, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("acsprov: error: ")
    assert "Traceback" not in proc.stderr
    assert case.message in proc.stderr
    after = _state(directory)
    assert {k: after.get(k) for k in before} == before  # the user's files, untouched
    new = set(after) - set(before)
    assert all(p.startswith("prov/") or p == ".acsprov.lock" for p in new), new
