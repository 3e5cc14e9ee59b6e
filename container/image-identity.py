"""Write the image identity file of acsprov's container image (run at build time).

    python image-identity.py OUT --name NAME --crds-context hst_NNNN.pmap
        --crds-mappings none|mappings|references --base-image REF
        --hstcal-prefix /opt/hstcal [--build-date ISO] LOCKFILE...

OUT gets a flat JSON object: image name, build date (UTC), base image, the sha256 of
each lock file, the hstcal version ("none" without hstcal) and the sha256 of its
exported conda environment, and the CRDS context with what of it is baked in.
acsprov reads it (``ACSPROV_IMAGE_IDENTITY``) into the software agent of every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256(path: Path) -> str:
    """The sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(args: argparse.Namespace) -> dict[str, str]:
    """The identity fields for the parsed command line."""
    date = args.build_date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {
        "name": args.name,
        "build_date": date,
        "base_image": args.base_image,
        "crds_context": args.crds_context,
        "crds_mappings": args.crds_mappings,
    }
    for lock in args.locks:
        key = Path(lock).name.replace(".", "_").replace("-", "_")
        fields[f"{key}_sha256"] = sha256(Path(lock))
    prefix = Path(args.hstcal_prefix)
    version = prefix / "VERSION"
    fields["hstcal_version"] = version.read_text().strip() if version.is_file() else "none"
    explicit = prefix / "conda-explicit.txt"
    if explicit.is_file():
        fields["hstcal_env_sha256"] = sha256(explicit)
    return fields


def main() -> None:
    """Parse the command line and write the identity file atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("locks", nargs="+")
    parser.add_argument("--name", required=True)
    parser.add_argument("--build-date", default="")
    parser.add_argument("--base-image", required=True)
    parser.add_argument("--crds-context", required=True)
    parser.add_argument("--crds-mappings", required=True)
    parser.add_argument("--hstcal-prefix", required=True)
    args = parser.parse_args()
    text = json.dumps(identity(args), indent=2, sort_keys=True) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    print(text, end="")


if __name__ == "__main__":
    main()
