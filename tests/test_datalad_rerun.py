"""A run's dataset is self-contained: a fresh clone re-makes every product.

With the real DataLad command line: ``datalad clone`` (of the work directory, and of a
bundle's ``dataset.git``), ``datalad get .``, ``datalad rerun --since=``.  Every
command runs; every product is re-made identical in data and in every header card but
the run-identity ones (:data:`acsprov.provenance.stamp.RUN_IDENTITY_CARDS` and the
HISTORY line naming the activity that made the file); the rerun is recorded in PROV
and ``acsprov prov verify`` passes after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from acsprov.provenance.stamp import RUN_IDENTITY_CARDS

BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env = {k: v for k, v in env.items() if not k.startswith("CRDS") and k != "jref"}
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=1200)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def _fits_products(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("example2/*.fits"))


def _cards(header: fits.Header) -> list[tuple[str, str]]:
    """(keyword, value) of every card, the run-identity ones left out and the HISTORY
    line naming the file's own activity reduced to its action."""
    own = str(header.get("PROVACT", "\0"))
    cards = []
    for card in header.cards:
        if card.keyword in RUN_IDENTITY_CARDS:
            continue
        value = str(card.value)
        if card.keyword == "HISTORY" and value.endswith(f"({own})"):
            value = value.replace(own, "<PROVACT>")
        cards.append((card.keyword, value))
    return cards


def _assert_remade(original: Path, clone: Path) -> list[str]:
    """Every FITS file of the run re-made: same data, same cards but the declared ones."""
    compared = []
    names = _fits_products(original)
    assert names == _fits_products(clone)
    for rel in names:
        with fits.open(original / rel) as a, fits.open(clone / rel) as b:
            assert len(a) == len(b), rel
            for ha, hb in zip(a, b, strict=True):
                assert _cards(ha.header) == _cards(hb.header), rel
                if ha.data is not None:
                    assert (ha.data == hb.data).all() if ha.is_image else \
                        ha.data.tobytes() == hb.data.tobytes(), rel
        compared.append(rel)
    return compared


def _rerun_in_clone(source: str, clone: Path, original: Path) -> None:
    _run("datalad", "clone", source, str(clone), cwd=clone.parent)
    # unlocked annexed files are pointer files until `datalad get`
    assert (clone / "example2/j8is01021_crj.fits").read_bytes().startswith(b"/annex/")
    _run("datalad", "get", ".", cwd=clone)
    before = set((clone / "prov").glob("*.json"))
    head = _run("git", "rev-parse", "HEAD", cwd=clone).stdout.strip()
    out = _run("datalad", "rerun", "--since=", cwd=clone)
    ran = {line.split("[", 1)[1].split()[1:3][-1 if "step" in line else 0]
           for line in out.stdout.splitlines()
           if line.startswith("run(ok):") and "[acsprov " in line}
    recorded = _run("git", "log", "--format=%s", head, cwd=clone).stdout
    commands = [s for s in recorded.splitlines() if s.startswith("[DATALAD RUNCMD]")]
    # every command ran again: acsprov fetch (obtain) and acsprov step <each action>
    assert ran == {"fetch", "copy", "bestrefs", "copy_reference", "set_header", "calacs"}
    assert len(commands) == 6
    new = _run("git", "log", "--format=%s", f"{head}..HEAD", cwd=clone).stdout.splitlines()
    # each step a new commit (obtaining again gives the same files: nothing to commit)
    assert [n for n in new if "obtain:" not in n] == [c for c in commands
                                                      if "obtain:" not in c]
    compared = _assert_remade(original, clone)
    assert "example2/j8is01021_crj.fits" in compared and "example2/mybias.fits" in compared
    # the rerun is recorded in PROV: one document per re-executed step
    documents = sorted(set((clone / "prov").glob("*.json")) - before)
    steps = [c for c in commands if "obtain:" not in c]
    assert len(documents) == len(steps)
    activities = [a for d in documents for a in json.loads(d.read_text())["activity"].values()]
    assert all(a["acsprov:status"] == "ok" and a["acsprov:rerun_of"] != "unknown"
               for a in activities)
    crj = fits.getheader(clone / "example2/j8is01021_crj.fits")
    assert crj["PROVRUN"] in {d.stem for d in documents}
    assert crj["PROVDOC"]  # the document before the re-executed action, not empty
    out = _run(str(BIN / "acsprov"), "prov", "verify", str(clone), cwd=clone)
    assert "provenance verified" in out.stdout
    # the products' lineage now leads through the rerun to the user's bias
    out = _run(str(BIN / "acsprov"), "prov", "show", "example2/j8is01021_crj.fits", cwd=clone)
    assert "rerun: calacs" in out.stdout and "user-supplied" in out.stdout


def test_reference_files_are_in_the_dataset_with_their_origin(recorded_hrc_asn_run):
    root = recorded_hrc_asn_run.root
    tracked = _run("git", "ls-files", "crds", cwd=root).stdout.split()
    refs = [t for t in tracked if t.startswith("crds/references/hst/")]
    assert "crds/references/hst/m9i1742aj_bia.fits" in refs
    origin = json.loads((root / "crds/references.json").read_text())["files"]
    assert set(origin) == {Path(r).name for r in refs}
    assert origin["m9i1742aj_bia.fits"]["crds_context"] == "hst_9001.pmap"
    assert origin["m9i1742aj_bia.fits"]["origin"].endswith("references/hst/m9i1742aj_bia.fits")
    assert any(t.startswith("crds/mappings/hst/hst_9001.pmap") for t in tracked)
    # annexed, not in git; nothing else of the local cache is left in the dataset
    assert _run("git", "annex", "whereis", "--json", refs[0], cwd=root).stdout
    assert not _run("git", "status", "--porcelain", "--ignored", "crds", cwd=root).stdout
    # every step command names paths inside the dataset only
    log = _run("git", "log", "--format=%B", cwd=root).stdout
    assert "../" not in log.split("=== Do not change lines below ===", 1)[1]
    assert "--crds-path crds" in log and "--rundir example2" in log


@pytest.mark.parametrize("where", ["work directory", "bundle"])
def test_datalad_rerun_in_a_fresh_clone(recorded_hrc_asn_run, tmp_path, where):
    root = recorded_hrc_asn_run.root
    source = str(root)
    if where == "bundle":
        from acsprov.publish import make_bundle

        source = str(make_bundle(root, tmp_path / "bundle", say=lambda m: None)
                     / "dataset.git")
    _rerun_in_clone(source, tmp_path / "clone", root)
