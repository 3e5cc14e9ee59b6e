"""Build acsprov's image and run a recipe in it (slow: ``make test-container``).

The image is built from a local Debian base (``debootstrap --variant=minbase
bookworm`` + ``podman import``, so no registry is needed), without hstcal, so that
inside it ``auto`` runs acsprov's native engine.  The smallest recipe (HRC-only
``j8is01merged``) then runs inside the image through ``make reprocess IN_CONTAINER=1``
and its products must equal those of the same recipe run outside the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(5400)]

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("ACSPROV_TEST_IMAGE", "localhost/acsprov:test")
BASE = os.environ.get("ACSPROV_TEST_BASE", "localhost/acsprov-base:bookworm")
RECIPE = "j8is01merged"


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=5400)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _engine() -> str:
    proc = subprocess.run([str(ROOT / "container" / "engine.sh"), "check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # make test-container needs a working engine
    return proc.stdout.strip()


def _in_image(*command: str, **env: str) -> str:
    proc = subprocess.run([str(ROOT / "container" / "engine.sh"), "run", *command],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, IMAGE=IMAGE, **env))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict[str, object]:
    """Build the base (once) and the image; return what was measured."""
    engine = _engine()
    facts: dict[str, object] = {"engine": engine}
    start = time.perf_counter()
    exists = subprocess.run([engine, "image", "exists", BASE] if engine == "podman"
                            else [engine, "image", "inspect", BASE], capture_output=True)
    if exists.returncode != 0:
        _make("container-base", f"LOCAL_BASE={BASE}")
    facts["base_seconds"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    _make("container", f"IMAGE={IMAGE}", f"BASE_IMAGE={BASE}", "HSTCAL=none")
    facts["build_seconds"] = round(time.perf_counter() - start, 1)
    size = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", IMAGE],
                          capture_output=True, text=True, check=True).stdout.strip()
    facts["size_mb"] = round(int(size) / 1e6)
    print(f"\ncontainer image {IMAGE}: {facts}")
    return facts


def test_image_identity_user_and_tools(image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)  # the image's own user (uid 1000) writes here
    out = _in_image("sh", "-c", "id -u; pwd; cat /etc/acsprov/image.json; "
                    "command -v calacs.e || echo no-calacs; echo jref=$jref; "
                    "touch /data/written && echo wrote",
                    DATA_DIR=str(data), CONTAINER_USER="image")
    lines = out.splitlines()
    assert lines[0] != "0" and int(lines[0]) == 1000  # a non-root user
    assert lines[1] == "/data"
    start = lines.index("{")
    end = lines.index("}")
    identity = json.loads("\n".join(lines[start:end + 1]))
    assert identity["name"] == IMAGE
    assert identity["hstcal_version"] == "none"
    assert identity["crds_context"] == "hst_1358.pmap"
    lock = hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
    assert identity["requirements_lock_sha256"] == lock
    assert identity["base_image"] == BASE
    assert "no-calacs" in lines  # without hstcal, `auto` is the native engine
    assert "wrote" in lines and (data / "written").is_file()


def test_pinned_python_layer_is_the_lock(image):
    out = _in_image("python", "-c", "import importlib.metadata as m; "
                    "print(m.version('crds'), m.version('acstools'), m.version('numpy'))",
                    DATA_DIR="/tmp")
    from importlib.metadata import version

    assert out.split() == [version("crds"), version("acstools"), version("numpy")]


def test_reprocess_in_container_equals_native_outside(image, tmp_path):
    inside = tmp_path / "inside"
    outside = tmp_path / "outside"
    env = dict(os.environ, ACSPROV_OFFLINE="1")
    start = time.perf_counter()
    _make("reprocess", "IN_CONTAINER=1", f"DATASET={RECIPE}", f"WORKDIR={inside}",
          f"IMAGE={IMAGE}", env=env)
    seconds = time.perf_counter() - start
    print(f"\n{RECIPE} inside {IMAGE}: {seconds:.1f} s")
    _make("reprocess", f"DATASET={RECIPE}", f"WORKDIR={outside}", env=env)

    products = sorted(p.name for p in (inside / RECIPE / "example3").glob("*_*.fits"))
    assert "j8is01xx1_crj.fits" in products
    assert sum(p.endswith("_flt.fits") for p in products) == 4
    for name in products:
        with fits.open(inside / RECIPE / "example3" / name) as a, \
                fits.open(outside / RECIPE / "example3" / name) as b:
            for hdu_a, hdu_b in zip(a, b, strict=True):
                if hdu_a.is_image and hdu_a.data is not None:
                    assert np.array_equal(hdu_a.data, hdu_b.data), name

    (document,) = (inside / RECIPE / "prov").glob("*.json")
    doc = json.loads(document.read_text())
    (agent,) = [a for a in doc["agent"].values()
                if a.get("prov:type", {}).get("$") == "prov:SoftwareAgent"
                and a.get("prov:label") == "acsprov"]
    assert agent["acsprov:image_name"] == IMAGE
    assert agent["acsprov:image_hstcal_version"] == "none"
    assert agent["acsprov:image_crds_context"] == "hst_1358.pmap"
    assert agent["acsprov:image_digest"].startswith("sha256:")
    assert agent["acsprov:image_id"]
    assert agent["acsprov:image_crds_source"] == "acsprov local cache"
    engines = {a.get("acsprov:engine") for a in doc["activity"].values()} - {None}
    assert engines == {"native"}
    # outside the image nothing claims one
    (outside_doc,) = (outside / RECIPE / "prov").glob("*.json")
    outside_agents = json.loads(outside_doc.read_text())["agent"].values()
    assert not any(k.startswith("acsprov:image_") for a in outside_agents for k in a)
