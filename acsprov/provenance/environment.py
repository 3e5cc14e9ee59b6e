"""The software environment of a run, recorded as the PROV software agent."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import platform
import sys
from functools import cache
from pathlib import Path

__all__ = ["IMAGE_IDENTITY_ENV", "image_identity", "software_versions", "user_name"]

#: Environment variable naming the image identity file (set inside the container).
IMAGE_IDENTITY_ENV = "ACSPROV_IMAGE_IDENTITY"
_DEFAULT_IDENTITY = Path("/etc/acsprov/image.json")
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
    """The container image's identity file (written at image build time), if any.

    Holds the image name, build date, lock-file hashes, hstcal version and CRDS
    context; ``ACSPROV_IMAGE_DIGEST`` adds the digest where the runtime exposes it.
    """
    path = Path(os.environ.get(IMAGE_IDENTITY_ENV, _DEFAULT_IDENTITY))
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"identity_file": str(path), "error": "unreadable image identity file"}
    identity = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    digest = os.environ.get("ACSPROV_IMAGE_DIGEST")
    if digest:
        identity["digest"] = digest
    return identity


def user_name() -> str:
    """The user running acsprov."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
