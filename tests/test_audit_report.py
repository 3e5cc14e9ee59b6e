"""Audit reports: the JSON schema, and the HTML page as a browser draws it."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from acsprov.audit import audit_archive
from acsprov.audit.report import load_schema, report_data, validate_report, write_report
from acsprov.errors import BadInputError


@pytest.fixture(scope="module")
def archive_report(recorded_hrc_run, tmp_path_factory):
    """A real report: the recorded HRC run against the archive's _flt."""
    result = audit_archive(recorded_hrc_run.root, say=lambda m: None)
    paths = write_report(result, tmp_path_factory.mktemp("report"))
    return result, paths


def test_schema_is_shipped_and_documents_the_report(archive_report):
    schema = load_schema()
    assert schema["$id"] == "https://w3id.org/acsprov/schemas/audit-report/1.0"
    assert schema["$schema"].startswith("https://json-schema.org/")
    for name in ("extension", "product", "input", "bbox"):
        assert name in schema["$defs"]
    _, (_, json_path) = archive_report
    data = json.loads(json_path.read_text())
    assert data["$schema"] == schema["$id"]
    assert set(schema["required"]) == set(data)  # every field documented, none extra


def test_real_report_validates_and_broken_ones_do_not(archive_report):
    result, (_, json_path) = archive_report
    data = json.loads(json_path.read_text())
    validate_report(data)
    assert data == json.loads(json.dumps(report_data(result)))  # what was written

    broken = copy.deepcopy(data)
    del broken["products"][0]["extensions"][0]["bbox"]
    with pytest.raises(BadInputError, match="bbox"):
        validate_report(broken)
    broken = copy.deepcopy(data)
    broken["products"][0]["extensions"][0]["n_outside"] = -1
    with pytest.raises(BadInputError, match="n_outside"):
        validate_report(broken)
    broken = copy.deepcopy(data)
    broken["kind"] = "guess"
    with pytest.raises(BadInputError, match="kind"):
        validate_report(broken)
    broken = copy.deepcopy(data)
    broken["products"][0]["surprise"] = 1
    with pytest.raises(BadInputError, match="surprise"):
        validate_report(broken)


def test_html_report_is_self_contained(archive_report):
    _, (html_path, _) = archive_report
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "src='data:image/png;base64," in page
    assert "http://" not in page.replace("http://schema", "") and "<script" not in page
    assert "<link" not in page  # no external style sheets or fonts


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not on PATH; `make test` installs it (apt-get install chromium)")


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(archive_report, tmp_path):
    _, (html_path, _) = archive_report
    shot = tmp_path / "report.png"
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1400,1800", html_path.absolute().as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1800, 1400)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 500, "the page looks blank"
    not_white = np.any(pixels < 235, axis=2).mean()
    assert 0.1 < not_white < 0.95
    # the banner across the top is red: the recalibration differs from the archive
    banner = pixels[150:230, 120:1280].reshape(-1, 3).astype(int)
    red = (banner[:, 0] > 150) & (banner[:, 1] < 120) & (banner[:, 2] < 120)
    assert red.mean() > 0.5
