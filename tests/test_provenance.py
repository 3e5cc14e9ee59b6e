"""The recorder: PROV documents, DataLad commits with run records, annex safety."""

from __future__ import annotations

import io
import json
import subprocess

import prov.model as pm
import pytest
from astropy.io import fits
from helpers import make_raw

from acsprov.fitsutil import sha256sum
from acsprov.keywords import set_header
from acsprov.provenance import Recorder, apply_stamp, current_stamp
from acsprov.provenance._prov import build_document, serialize


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


def _add_raw(rec, name="j8is01j2q_raw.fits"):
    with rec.activity("copy", command=f"cp src/{name} .", cwd=rec.root) as act:
        raw = make_raw(rec.root / name, BIASFILE="jref$old_bia.fits")
        act.generated(raw, role="raw")
    return raw


def test_header_edit_is_recorded_with_before_and_after(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t")
    raw = _add_raw(rec)
    pointer = _git(rec.root, "show", "HEAD:j8is01j2q_raw.fits")
    assert pointer.startswith("/annex/objects/BLAKE3_256E-"), "FITS files are annexed"
    assert not raw.is_symlink(), "annexed unlocked: the work tree keeps a regular file"
    sha_before = sha256sum(raw)
    with rec.activity("set_header", params={"BIASFILE": "mybias.fits"},
                      command="acsprov set-header j8is01j2q_raw.fits BIASFILE=mybias.fits",
                      cwd=rec.root, will_write=[raw]) as act:
        act.used(raw, role="raw")
        edit = set_header(raw, {"BIASFILE": "mybias.fits"})
        act.generated(raw, role="raw", derived_from=[raw])
        act.note(header_changes=[{"keyword": c.keyword, "before": c.before, "after": c.after}
                                 for c in edit.changes])
    sha_after = sha256sum(raw)
    assert sha_after != sha_before

    doc = json.loads(rec.document_path.read_text())
    entities = doc["entity"].values()
    shas = {e["acsprov:sha256"] for e in entities if "acsprov:sha256" in e}
    assert {sha_before, sha_after} <= shas
    edit_acts = [a for a in doc["activity"].values()
                 if a.get("prov:label") == "set_header"]
    assert len(edit_acts) == 1
    changes = json.loads(edit_acts[0]["acsprov:header_changes"])
    assert changes == [{"keyword": "BIASFILE", "before": "jref$old_bia.fits",
                        "after": "mybias.fits"}]
    assert len(doc["wasDerivedFrom"]) == 1
    assert len(doc["wasInformedBy"]) == 1

    # the annex is intact and both versions of the raw file stay retrievable
    _git(rec.root, "annex", "fsck", "--quiet")
    assert not any((rec.root / ".git" / "annex" / "bad").glob("*"))
    log = _git(rec.root, "log", "--format=%s", "--", "j8is01j2q_raw.fits").splitlines()
    assert log == ["[DATALAD RUNCMD] set_header: set_header", "[DATALAD RUNCMD] copy: copy"]
    first = _git(rec.root, "log", "--format=%H", "--", "j8is01j2q_raw.fits").split()[-1]
    _git(rec.root, "annex", "get", "--quiet", "j8is01j2q_raw.fits")
    old = subprocess.run(["git", "-C", str(rec.root), "show", f"{first}:j8is01j2q_raw.fits"],
                         capture_output=True, text=True, check=True).stdout
    assert "annex/objects" in old  # the first version is an annex key still present
    assert "BLAKE3_256E" in old


def test_write_in_place_as_root_never_reaches_the_annex(tmp_path):
    """An annexed file written in place (as calacs.e does to association tables, and as
    root may) leaves the annexed version intact: the annex holds a copy, not the file."""
    rec = Recorder(tmp_path / "ds", name="t")
    raw = _add_raw(rec)
    committed = sha256sum(raw)
    with fits.open(raw, mode="update") as hdul:
        hdul[0].header["BIASFILE"] = "changed.fits"
    assert sha256sum(raw) != committed
    _git(rec.root, "annex", "fsck", "--quiet")
    assert not any((rec.root / ".git" / "annex" / "bad").glob("*"))
    key = _git(rec.root, "show", "HEAD:j8is01j2q_raw.fits").strip().rsplit("/", 1)[1]
    objects = list((rec.root / ".git" / "annex" / "objects").rglob(key))
    assert [sha256sum(p) for p in objects if p.is_file()] == [committed]


def test_background_commits_keep_each_action_s_content(tmp_path):
    """With commits made in the background, each commit still holds the file as its
    action left it, and an action that rewrites a file still being committed waits."""
    rec = Recorder(tmp_path / "ds", name="t", background=True)
    raw = _add_raw(rec)
    first = sha256sum(raw)
    with rec.activity("set_header", command="acsprov set-header", cwd=rec.root,
                      will_write=[raw], overlap=True) as act:
        set_header(raw, {"BIASFILE": "mybias.fits"})
        act.generated(raw, role="raw", derived_from=[raw])
    second = sha256sum(raw)
    with rec.activity("copy", command="cp x y", cwd=rec.root, overlap=True) as act:
        act.generated(make_raw(rec.root / "j8is01j3q_raw.fits"), role="raw")
    rec.close()
    assert _git(rec.root, "status", "--porcelain", "--untracked-files=no") == ""
    subjects = _git(rec.root, "log", "--format=%s").splitlines()[:3]
    assert subjects == ["[DATALAD RUNCMD] copy: copy", "[DATALAD RUNCMD] set_header: "
                        "set_header", "[DATALAD RUNCMD] copy: copy"]
    for rev, expected in (("HEAD~2", first), ("HEAD~1", second)):
        key = _git(rec.root, "show", f"{rev}:j8is01j2q_raw.fits").strip().rsplit("/", 1)[1]
        content = next(p for p in (rec.root / ".git" / "annex" / "objects").rglob(key)
                       if p.is_file())
        assert sha256sum(content) == expected
    assert rec.timing["background_commits"] is True
    assert rec.timing["commit_seconds"] > 0


def test_commit_carries_a_datalad_run_record(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t")
    _add_raw(rec)
    message = _git(rec.root, "log", "-1", "--format=%B")
    assert message.startswith("[DATALAD RUNCMD] copy")
    record = json.loads(message.split("=== Do not change lines below ===")[1]
                        .split("^^^ Do not change lines above ^^^")[0])
    assert record["cmd"] == "cp src/j8is01j2q_raw.fits ."
    assert "j8is01j2q_raw.fits" in record["outputs"]
    assert record["acsprov"]["prov"] == rec.relpath(rec.document_path)
    assert record["acsprov"]["activity"] == rec.run.activities[-1].id


def test_prov_json_and_xml_round_trip(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t", datalad=False)
    _add_raw(rec, "odd name (1)#.fits")
    doc = build_document(rec.run)
    again = pm.ProvDocument.deserialize(io.StringIO(serialize(doc, "json")), format="json")
    assert again == doc
    xml = pm.ProvDocument.deserialize(io.StringIO(serialize(doc, "xml")), format="xml")
    assert xml == doc
    turtle = serialize(doc, "turtle")
    assert "odd name" in turtle  # the real name is an attribute...
    assert "ent:sha256-" in serialize(doc, "provn")  # ...identifiers are hashes


def test_failed_activity_is_recorded_and_not_committed(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t")
    head = _git(rec.root, "rev-parse", "HEAD")
    with pytest.raises(ValueError, match="boom"), rec.activity("calacs", cwd=rec.root):
        raise ValueError("boom")
    assert _git(rec.root, "rev-parse", "HEAD") == head
    doc = json.loads(rec.document_path.read_text())
    (activity,) = doc["activity"].values()
    assert activity["acsprov:status"] == "error"
    assert activity["acsprov:message"] == "boom"


def test_products_are_stamped_inside_an_activity(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t", datalad=False)
    assert current_stamp() is None
    _add_raw(rec)
    first_doc_sha = sha256sum(rec.document_path)
    with rec.activity("calacs", cwd=rec.root) as act:
        header = apply_stamp(fits.Header())
    assert header["PROVACT"] == act.id
    assert header["PROVRUN"] == rec.run.run_id
    assert header["PROVDOC"] == first_doc_sha
    assert any("calacs" in str(h) for h in header["HISTORY"])
    assert current_stamp() is None


def test_external_reference_files_use_an_alias(tmp_path):
    jref = tmp_path / "cache" / "references" / "hst"
    jref.mkdir(parents=True)
    ref = make_raw(jref / "x_bia.fits")
    rec = Recorder(tmp_path / "ds", name="t", datalad=False, aliases={jref: "jref$"})
    with rec.activity("calacs", cwd=rec.root) as act:
        act.used(ref, role="biasfile")
    (used,) = rec.run.activities[0].used
    assert used.path == "jref$x_bia.fits"
    assert used.external


def _edited_dataset(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t")
    raw = _add_raw(rec)
    with rec.activity("set_header", command="true", cwd=rec.root, will_write=[raw]) as act:
        act.used(raw, role="raw")
        set_header(raw, {"BIASFILE": "mybias.fits"})
        act.generated(raw, role="raw", derived_from=[raw])
    with rec.activity("calacs", command="true", cwd=rec.root) as act:
        act.used(raw, role="raw")
        flt = rec.root / "j8is01j2q_flt.fits"
        make_raw(flt)
        act.generated(flt, role="flt", derived_from=[raw])
    return rec, raw, flt


def test_prov_show_prints_the_chain_of_a_product(tmp_path, capsys):
    from acsprov.cli import main

    _rec, _raw, flt = _edited_dataset(tmp_path)
    assert main(["prov", "show", str(flt)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("j8is01j2q_flt.fits  sha256:")
    assert "<- calacs [ok]" in out[1]
    text = "\n".join(out)
    # flt <- calacs <- raw (edited) <- set_header <- raw (copied) <- copy
    assert text.index("set_header") < text.index("<- copy")
    assert text.count("j8is01j2q_raw.fits") == 2


def test_prov_verify_passes_then_names_a_changed_product(tmp_path, capsys):
    from acsprov.cli import main

    rec, _raw, flt = _edited_dataset(tmp_path)
    assert main(["prov", "verify", str(rec.root)]) == 0
    # change one byte of the product's data
    target = flt.resolve()
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    flt.unlink()
    flt.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["prov", "verify", str(rec.root)]) == 6
    err = capsys.readouterr().err
    assert "j8is01j2q_flt.fits: content differs from its provenance record" in err


def test_prov_verify_detects_an_edited_document(tmp_path, capsys):
    from acsprov.cli import main

    rec, _, _ = _edited_dataset(tmp_path)
    text = rec.document_path.read_text().replace('"ok"', '"OK"', 1)
    rec.document_path.write_text(text)
    assert main(["prov", "verify", str(rec.root)]) == 6
    assert "PROV document was edited" in capsys.readouterr().err


def test_prov_export_and_graph(tmp_path, capsys):
    from acsprov.cli import main

    rec, _, _ = _edited_dataset(tmp_path)
    for fmt, suffix in (("provn", ".provn"), ("turtle", ".ttl"), ("xml", ".xml")):
        assert main(["prov", "export", str(rec.root), "--format", fmt]) == 0
        assert rec.document_path.with_suffix(suffix).stat().st_size > 500
    xml = pm.ProvDocument.deserialize(str(rec.document_path.with_suffix(".xml")), format="xml")
    assert len(list(xml.get_records(pm.ProvActivity))) == 3
    assert main(["prov", "graph", str(rec.root)]) == 0
    svg = rec.document_path.with_suffix(".svg").read_text()
    assert svg.startswith("<?xml") and "set_header" in svg
    png = rec.document_path.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_lineage_links_runs_of_one_work_directory(tmp_path):
    from acsprov.provenance.query import lineage

    first = Recorder(tmp_path / "ds", name="one", datalad=False)
    raw = _add_raw(first)
    second = Recorder(tmp_path / "ds", name="two", datalad=False)
    with second.activity("calacs", cwd=second.root) as act:
        act.used(raw, role="raw")
        flt = make_raw(second.root / "j8is01j2q_flt.fits")
        act.generated(flt, role="flt", derived_from=[raw])
    node = lineage(flt)
    assert node.activity["prov:type"]["$"] == "acsprov:calacs"
    (parent,) = node.inputs
    assert parent.entity["acsprov:path"] == "j8is01j2q_raw.fits"
    assert parent.activity["prov:type"]["$"] == "acsprov:copy"  # from the first run


def test_an_alias_inside_the_root_wins(tmp_path):
    """The dataset's own CRDS cache (crds/) is recorded as jref$, a reference file."""
    root = tmp_path / "ds"
    jref = root / "crds" / "references" / "hst"
    jref.mkdir(parents=True)
    ref = make_raw(jref / "x_bia.fits")
    rec = Recorder(root, name="t", datalad=False, aliases={jref: "jref$"})
    with rec.activity("calacs", cwd=rec.root) as act:
        act.used(ref, role="biasfile")
        act.used(make_raw(root / "mybias.fits"), role="biasfile", keyword="BIASFILE")
    aliased, own = rec.run.activities[0].used
    assert (aliased.path, aliased.external) == ("jref$x_bia.fits", True)
    assert (own.path, own.external) == ("mybias.fits", False)


def test_the_first_action_of_a_run_has_a_provdoc(tmp_path):
    rec = Recorder(tmp_path / "ds", name="t", datalad=False)
    with rec.activity("calacs", cwd=rec.root):
        header = apply_stamp(fits.Header())
    assert len(header["PROVDOC"]) == 64
