"""Small hand-made ACS files for unit tests (not the simulator's, which is tested itself),
and drawing HTML pages in headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.keywords import REFERENCE_KEYWORDS, SWITCHES


def make_removable(top: str | os.PathLike[str]) -> None:
    """Make every directory below `top` writable, so that ``shutil.rmtree`` can empty
    it: git-annex write-protects its object directories."""
    for parent, dirs, _ in os.walk(top):
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def make_raw(path: Path, *, shape: tuple[int, int] = (6, 8), **keywords: object) -> Path:
    """Write a tiny raw-like ACS file: primary header with switches, one SCI/ERR/DQ imset."""
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["INSTRUME"] = "ACS"
    hdr["DETECTOR"] = "HRC"
    hdr["ROOTNAME"] = path.name.split("_")[0]
    for switch in SWITCHES:
        hdr[switch] = "PERFORM"
    for key in REFERENCE_KEYWORDS:
        hdr[key] = "N/A"
    for key, value in keywords.items():
        hdr[key] = value
    sci = np.arange(shape[0] * shape[1], dtype=np.uint16).reshape(shape)
    hdus = [primary, fits.ImageHDU(sci, name="SCI")]
    hdus.append(fits.ImageHDU(np.zeros(shape, np.float32), name="ERR"))
    hdus.append(fits.ImageHDU(np.zeros(shape, np.int16), name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return path


def make_asn(path: Path, rows: Iterable[tuple[str, str, object]], **keywords: object) -> Path:
    """Write an association table with the given (MEMNAME, MEMTYPE, MEMPRSNT) rows."""
    rows = list(rows)
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "ACS"
    primary.header["ASN_ID"] = path.name.split("_")[0].upper()
    for key, value in keywords.items():
        primary.header[key] = value
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="MEMNAME", format="14A", array=[r[0] for r in rows]),
            fits.Column(name="MEMTYPE", format="14A", array=[r[1] for r in rows]),
            fits.Column(name="MEMPRSNT", format="L", array=[bool(r[2]) for r in rows]),
        ],
        name="ASN",
    )
    fits.HDUList([primary, table]).writeto(path)
    return path


def primary(path: Path) -> Mapping[str, object]:
    """The primary header of `path` as a plain dict."""
    return dict(fits.getheader(path, 0))


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run")
#: Where test screenshots are kept for people to look at ($ACSPROV_SCREENSHOTS), if set.
SCREENSHOTS = os.environ.get("ACSPROV_SCREENSHOTS")


def chromium() -> str:
    """The Chromium to draw pages with (/usr/bin/chromium, or one on PATH)."""
    import shutil

    import pytest

    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not on PATH; `make test` installs it (or NO_CHROMIUM=1 deselects "
                "the browser tests)")


def browse(page: Path, tmp: Path, *, size: tuple[int, int] = (1400, 1800),
           name: str = "page") -> tuple[str, np.ndarray]:
    """Draw `page` in headless Chromium: its DOM as the browser built it, and a screenshot.

    The screenshot is also copied to ``$ACSPROV_SCREENSHOTS/<name>.png`` when set.
    """
    import shutil
    import subprocess
    import tempfile

    from PIL import Image

    shot = tmp / f"{name}.png"
    base = [chromium(), *CHROMIUM_FLAGS]
    runs = []
    for extra in ([f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}"],
                  ["--dump-dom"]):
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp)
        runs.append(subprocess.run([*base, f"--user-data-dir={profile}", *extra,
                                    Path(page).absolute().as_uri()],
                                   capture_output=True, text=True, timeout=180, check=False))
    assert runs[0].returncode == 0 and shot.is_file(), runs[0].stderr[-2000:]
    assert runs[1].returncode == 0, runs[1].stderr[-2000:]
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(SCREENSHOTS) / f"{name}.png")
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (size[1], size[0])
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200, "the page looks blank"
    return runs[1].stdout, pixels
