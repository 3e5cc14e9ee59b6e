"""The tamper table: each kind of tamper against each check that can see it.

Rows are tampers; columns are ``acsprov prov verify``, ``acsprov audit``, ``acsprov
publish`` (applied to a copy of a recorded work directory) and ``acsprov publish
--check`` without and with ``--trusted-signers`` (applied to a copy of a signed
bundle of the same run).  A bundle tamper is *re-sealed*: the manifest and the crate
metadata are rewritten to match, as someone hiding a change would do; only what the
PROV documents, the dataset inside and the signature say can catch it.

``True`` means the check must fail (exit non-zero), ``False`` that it cannot see the
tamper (a bundle forged in full without the signing key passes an unsigned check:
that is what signatures are for), ``None`` that the tamper does not apply (a bundle
holds no reference files; a forged bundle is not a work directory).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from astropy.io import fits
from conftest import HRC_RECIPE

from acsprov.cli import main
from acsprov.dataset_refs import DATASET_CRDS
from acsprov.fitsutil import sha256sum
from acsprov.publish import MANIFEST, _all_files, _write_manifest

FLT = "example/j8is01j2q_flt.fits"
RAW = "example/j8is01j2q_raw.fits"
TRA = "example/j8is01j2q.tra"
ARCHIVE_RAW = "cal_fits/j8is01j2q_raw.fits"

COLUMNS = ("verify", "audit", "publish", "check", "check signed")

#: Which cells must detect the tamper (see the module docstring).
TABLE: dict[str, tuple[bool | None, ...]] = {
    "pixel":                     (True, True, True, True, True),
    "header":                    (True, True, True, True, True),
    "PROV document":             (True, True, True, True, True),
    "deleted product + save":    (True, True, True, True, True),
    "rewritten sha + save":      (True, True, True, True, True),
    "rollback":                  (True, True, True, True, True),
    "reference file":            (True, True, True, None, None),
    "raw file":                  (True, True, True, True, True),
    "trailer":                   (True, True, True, True, True),
    "forged bundle":             (None, None, None, False, True),
}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _save(root: Path) -> None:
    """What a user does after changing files: ``datalad save``."""
    subprocess.run(["datalad", "save", "-d", str(root), "-m", "my changes"],
                   capture_output=True, text=True, check=True)


def _replace(path: Path, edit: Callable[[fits.HDUList], None]) -> None:
    """Write an edited copy of a FITS file in its place (never through an annex link)."""
    with fits.open(path) as hdul:
        edit(hdul)
        hdul.writeto(path.with_name("edited.tmp.fits"))
    path.unlink()
    path.with_name("edited.tmp.fits").rename(path)


def _pixel(hdul: fits.HDUList) -> None:
    hdul["SCI", 1].data[500, 300] += 3.0


def _header(hdul: fits.HDUList) -> None:
    hdul[0].header["TARGNAME"] = "SOMEWHERE ELSE"


def _document(root: Path) -> Path:
    return sorted((root / "prov").glob("*.json"))[-1]


def _rewrite_sha(document: Path, old: str, new: str) -> None:
    document.write_text(document.read_text().replace(old, new))


# -- work directory tampers ------------------------------------------------------------
def wd_pixel(root: Path, ctx: dict) -> None:
    _replace(root / FLT, _pixel)


def wd_header(root: Path, ctx: dict) -> None:
    _replace(root / FLT, _header)


def wd_document(root: Path, ctx: dict) -> None:
    document = _document(root)
    document.write_text(document.read_text().replace('"ok"', '"OK"', 1))


def wd_deleted(root: Path, ctx: dict) -> None:
    (root / FLT).unlink()
    _save(root)


def wd_rewritten(root: Path, ctx: dict) -> None:
    old = sha256sum(root / FLT)
    _replace(root / FLT, _pixel)
    _rewrite_sha(_document(root), old, sha256sum(root / FLT))
    _save(root)


def wd_rollback(root: Path, ctx: dict) -> None:
    """The raw working copy back to its first recorded version (before the header
    edits), committed: an earlier record, not the latest."""
    (root / RAW).unlink()
    shutil.copyfile(root / ARCHIVE_RAW, root / RAW)
    _save(root)


def wd_reference(root: Path, ctx: dict) -> None:
    """One byte of the reference file the run used: its copy inside the dataset
    (crds/, where a run keeps its references), else the CRDS cache's."""
    own = root / DATASET_CRDS / "references" / "hst" / ctx["reference"].name
    target = own if own.is_file() else ctx["reference"]
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    if target == ctx["reference"]:
        os.rename(target, ctx["reference_backup"])  # the session's hard-linked file stays
    else:
        target.unlink()  # a link to the cache's file: replaced, never written through
    target.write_bytes(bytes(data))


def wd_raw(root: Path, ctx: dict) -> None:
    _replace(root / ARCHIVE_RAW, _pixel)


def wd_trailer(root: Path, ctx: dict) -> None:
    trailer = root / TRA
    text = trailer.read_text()
    trailer.unlink()
    trailer.write_text(text + "a line nobody wrote\n")


WORKDIR_TAMPERS = {
    "pixel": wd_pixel, "header": wd_header, "PROV document": wd_document,
    "deleted product + save": wd_deleted, "rewritten sha + save": wd_rewritten,
    "rollback": wd_rollback, "reference file": wd_reference, "raw file": wd_raw,
    "trailer": wd_trailer,
}


# -- bundle tampers (re-sealed) -----------------------------------------------------------
def _reseal(bundle: Path) -> None:
    """Rewrite the manifest and the crate metadata's checksums to match the files."""
    metadata = bundle / "ro-crate-metadata.json"
    crate = json.loads(metadata.read_text())
    present = set(_all_files(bundle))
    graph = []
    for entity in crate["@graph"]:
        ident = entity.get("@id", "")
        if entity.get("sha256") and not ident.startswith("#"):
            if ident not in present:
                continue
            entity["sha256"] = sha256sum(bundle / ident)
        graph.append(entity)
    described = {e.get("@id") for e in graph}
    for rel in sorted(present - described - {MANIFEST, f"{MANIFEST}.sig",
                                               "ro-crate-metadata.json"}):
        graph.append({"@id": rel, "@type": "File", "sha256": sha256sum(bundle / rel)})
    crate["@graph"] = graph
    metadata.write_text(json.dumps(crate, indent=1))
    (bundle / MANIFEST).unlink()
    _write_manifest(bundle)


def _commit_document(bundle: Path, tmp: Path, edit: Callable[[Path], None],
                     message: str) -> None:
    """Change the newest PROV document in the bundle's dataset with a new commit (and
    in prov/), as someone with the bundle but not the key can."""
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(bundle / "dataset.git"), str(clone)],
                   check=True, capture_output=True)
    rel = _document(bundle).relative_to(bundle).as_posix()
    edit(clone / rel)
    _git(clone, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-a",
         "-m", message.replace("SHA", sha256sum(clone / rel)).replace("REL", rel))
    _git(clone, "push", "-q", "origin", "HEAD")
    shutil.copyfile(clone / rel, bundle / rel)
    shutil.rmtree(clone)


def b_pixel(bundle: Path, ctx: dict) -> None:
    _replace(bundle / "data" / FLT, _pixel)


def b_header(bundle: Path, ctx: dict) -> None:
    _replace(bundle / "data" / FLT, _header)


def b_document(bundle: Path, ctx: dict) -> None:
    document = _document(bundle)
    document.write_text(document.read_text().replace('"ok"', '"OK"', 1))


def b_deleted(bundle: Path, ctx: dict) -> None:
    (bundle / "data" / FLT).unlink()


def b_rewritten(bundle: Path, ctx: dict) -> None:
    old = sha256sum(bundle / "data" / FLT)
    _replace(bundle / "data" / FLT, _pixel)
    new = sha256sum(bundle / "data" / FLT)
    _commit_document(bundle, ctx["tmp"], lambda doc: _rewrite_sha(doc, old, new), "save")


def b_rollback(bundle: Path, ctx: dict) -> None:
    shutil.copyfile(ctx["root"] / ARCHIVE_RAW, bundle / "data" / RAW)


def b_raw(bundle: Path, ctx: dict) -> None:
    """The archive raw file's version inside the dataset (its annexed object)."""
    key = os.path.basename(os.readlink(ctx["root"] / ARCHIVE_RAW)) \
        if os.path.islink(ctx["root"] / ARCHIVE_RAW) else _key_of(ctx["root"], ARCHIVE_RAW)
    (obj,) = [p for p in (bundle / "dataset.git" / "annex" / "objects").rglob(key)
              if p.is_file()]
    obj.chmod(0o644)
    _replace(obj, _pixel)


def _key_of(root: Path, rel: str) -> str:
    return _git(root, "annex", "lookupkey", rel)


def b_trailer(bundle: Path, ctx: dict) -> None:
    trailer = bundle / "data" / TRA
    trailer.write_text(trailer.read_text() + "a line nobody wrote\n")


def b_forged(bundle: Path, ctx: dict) -> None:
    """A product changed and everything rewritten to match: the PROV document, a
    commit in the dataset carrying acsprov's record of it, manifest and metadata."""
    old = sha256sum(bundle / "data" / FLT)
    _replace(bundle / "data" / FLT, _pixel)
    new = sha256sum(bundle / "data" / FLT)
    record = 'acsprov-record: {"prov": "REL", "prov_sha256": "SHA"}'
    _commit_document(bundle, ctx["tmp"], lambda doc: _rewrite_sha(doc, old, new),
                     f"acsprov: PROV exports\n\n{record}")


BUNDLE_TAMPERS = {
    "pixel": b_pixel, "header": b_header, "PROV document": b_document,
    "deleted product + save": b_deleted, "rewritten sha + save": b_rewritten,
    "rollback": b_rollback, "raw file": b_raw, "trailer": b_trailer,
    "forged bundle": b_forged,
}


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory, crds_cache):
    """A run of the HRC recipe against a private (hard-linked) copy of the CRDS cache,
    a throwaway ed25519 key, and a signed bundle of the run."""
    from acsprov.publish import make_bundle
    from acsprov.reprocess import reprocess

    top = tmp_path_factory.mktemp("tamper")
    cache = top / "crds_cache"
    shutil.copytree(crds_cache, cache, copy_function=os.link)
    recipe = top / "hrcbias.yaml"
    recipe.write_text(HRC_RECIPE)
    result = reprocess(str(recipe), workdir=top / "work", crds_path=cache,
                       say=lambda m: None)
    key = top / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tester",
                    "-f", str(key)], check=True)
    signers = top / "allowed_signers"
    signers.write_text(f'tester@example.org namespaces="acsprov-bundle" '
                       f'{(top / "key.pub").read_text()}')
    bundle = make_bundle(result.root, top / "bundle", sign_key=key, say=lambda m: None)
    doc = json.loads(_document(result.root).read_text())
    darkfile = next(e["acsprov:path"] for e in doc["entity"].values()
                    if e.get("acsprov:keyword") == "DARKFILE")
    reference = cache / "references" / "hst" / darkfile.split("$", 1)[1]
    assert reference.is_file()
    return {"root": result.root, "cache": cache, "bundle": bundle, "signers": signers,
            "reference": reference}


#: Why the unsigned check fails, per bundle tamper (the signed one: the signature).
CHECK_REASON = {
    "pixel": "not the latest version the PROV documents record",
    "header": "not the latest version the PROV documents record",
    "PROV document": "not the document committed in dataset.git",
    "deleted product + save": "recorded as a product but not in the bundle",
    "rewritten sha + save": "not the document acsprov recorded in dataset.git",
    "rollback": "not the latest version the PROV documents record",
    "raw file": "content differs from its git-annex key",
    "trailer": "not the latest version the PROV documents record",
}


def _detected(code: int) -> bool:
    return code != 0


@pytest.mark.parametrize("tamper", list(TABLE))
def test_tamper_table(tamper, recorded, tmp_path, capsys):
    expected = dict(zip(COLUMNS, TABLE[tamper], strict=True))
    found: dict[str, bool | None] = dict.fromkeys(COLUMNS)
    ctx = {"tmp": tmp_path, "root": recorded["root"], "reference": recorded["reference"],
           "reference_backup": tmp_path / "reference.backup"}
    # a pristine run and bundle pass every check
    if tamper in WORKDIR_TAMPERS:
        copy = tmp_path / "work" / "hrcbias"
        shutil.copytree(recorded["root"], copy, symlinks=True)
        WORKDIR_TAMPERS[tamper](copy, ctx)
        try:
            found["verify"] = _detected(main(["prov", "verify", str(copy)]))
            found["audit"] = _detected(main(["audit", str(copy), "--crds-path",
                                             str(recorded["cache"]), "--report",
                                             str(tmp_path / "report")]))
            found["publish"] = _detected(main(["publish", str(copy), "--out",
                                               str(tmp_path / "out")]))
        finally:
            if ctx["reference_backup"].exists():
                os.replace(ctx["reference_backup"], ctx["reference"])
    if tamper in BUNDLE_TAMPERS:
        bundle = tmp_path / "bundle"
        shutil.copytree(recorded["bundle"], bundle, symlinks=True)
        BUNDLE_TAMPERS[tamper](bundle, ctx)
        _reseal(bundle)
        capsys.readouterr()
        found["check"] = _detected(main(["publish", "--check", str(bundle)]))
        unsigned = capsys.readouterr().err
        assert CHECK_REASON.get(tamper, "acsprov: error:" if found["check"] else "") \
            in unsigned
        found["check signed"] = _detected(main(["publish", "--check", str(bundle),
                                                "--trusted-signers",
                                                str(recorded["signers"])]))
        assert "not a valid signature of manifest-sha256.txt" in capsys.readouterr().err
    output = capsys.readouterr()
    print(f"{tamper:24s} " + "  ".join(f"{c}={found[c]}" for c in COLUMNS))
    assert found == expected, output.err


def test_the_pristine_run_and_bundle_pass_every_check(recorded, tmp_path, capsys):
    root = recorded["root"]
    assert main(["prov", "verify", str(root)]) == 0
    assert main(["audit", str(root), "--crds-path", str(recorded["cache"]), "--report",
                 str(tmp_path / "report")]) == 0
    assert main(["publish", str(root), "--out", str(tmp_path / "out")]) == 0
    assert main(["publish", "--check", str(recorded["bundle"])]) == 0
    assert "signature NOT checked" in capsys.readouterr().out
    assert main(["publish", "--check", str(recorded["bundle"]), "--trusted-signers",
                 str(recorded["signers"])]) == 0
    assert "signed by tester@example.org" in capsys.readouterr().out
