"""The software environment of a run, recorded as the PROV software agent."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import platform
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["CONTAINERENV_ENV", "IMAGE_IDENTITY_ENV", "containerenv", "image_identity",
           "software_versions", "user_name"]

#: Environment variable naming the image identity file (set inside the container).
IMAGE_IDENTITY_ENV = "ACSPROV_IMAGE_IDENTITY"
_DEFAULT_IDENTITY = Path("/etc/acsprov/image.json")
#: Environment variable naming the runtime's container description (podman's file).
CONTAINERENV_ENV = "ACSPROV_CONTAINERENV"
_DEFAULT_CONTAINERENV = Path("/run/.containerenv")
_CONTAINERENV_KEYS = {"engine": "engine", "name": "container", "id": "container_id",
                      "image": "image", "imageid": "image_id"}
_PACKAGES = ("acsprov", "numpy", "astropy", "crds", "acstools", "stwcs", "numba", "prov",
             "datalad", "scipy")


@cache
def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape acsprov's results."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["executable"] = Path(sys.executable).name
    return versions


def image_identity() -> dict[str, str] | None:
    """The container image's identity, if acsprov runs inside its image.

    The identity file (written at image build time: image name, build date, base
    image, lock-file hashes, hstcal version, CRDS context) is
    ``$ACSPROV_IMAGE_IDENTITY`` or ``/etc/acsprov/image.json``; without it this
    returns None.  Added to it, where the runtime exposes them: the image digest and
    id (``ACSPROV_IMAGE_DIGEST``, ``ACSPROV_IMAGE_ID``, set by ``make ...
    IN_CONTAINER=1``), the engine, image name and id podman writes into
    ``/run/.containerenv`` (``$ACSPROV_CONTAINERENV``), and which CRDS cache the
    image's entrypoint chose (``ACSPROV_CRDS_SOURCE``).
    """
    path = Path(os.environ.get(IMAGE_IDENTITY_ENV) or _DEFAULT_IDENTITY)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"identity_file": str(path), "error": "unreadable image identity file"}
    identity = _flatten(data) if isinstance(data, dict) else {
        "error": "image identity file holds no JSON object"}
    identity["identity_file"] = str(path)
    for key, variable in (("digest", "ACSPROV_IMAGE_DIGEST"), ("id", "ACSPROV_IMAGE_ID"),
                          ("crds_source", "ACSPROV_CRDS_SOURCE")):
        value = os.environ.get(variable)
        if value and value != "none":
            identity[key] = value
    runtime = containerenv(Path(os.environ.get(CONTAINERENV_ENV) or _DEFAULT_CONTAINERENV))
    identity.update({f"runtime_{k}": v for k, v in runtime.items()})
    return identity


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A flat ``{name: text}`` view of a JSON object (nested keys joined by ``_``)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = _safe_key(f"{prefix}{key}")
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        elif isinstance(value, str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def _safe_key(key: str) -> str:
    """`key` reduced to characters a PROV attribute name can hold."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key) or "_"


def containerenv(path: Path) -> dict[str, str]:
    """What podman's ``/run/.containerenv`` says of the container: engine, image, id.

    Podman writes ``key="value"`` lines (engine, name, id, image, imageid, rootless)
    for privileged containers and an empty file otherwise; other runtimes write
    nothing.  Returns the fields found (possibly none).
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key in _CONTAINERENV_KEYS and value.strip():
            fields[_CONTAINERENV_KEYS[key]] = value.strip().strip('"')
    return fields


def user_name() -> str:
    """The user running acsprov."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
