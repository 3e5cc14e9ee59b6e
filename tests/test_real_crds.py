"""Archive data with the real CRDS: the unmodified crds client against a loopback server.

The CRDS server (``loopback.CrdsServer``) serves a context named like a real one,
``hst_1234.pmap``, built by the test from the simulator's reference files; the MAST
server serves archive-mode files (the simulator's inputs with its marks removed and
``CRDS_CTX`` naming that context).  Nothing of crds is mocked: it talks HTTP to
127.0.0.1, checks every download's sha1, and acsprov checks them again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from conftest import HRC_RECIPE as SIMULATED_HRC_RECIPE
from loopback import CrdsServer, serve, serve_mast, sha1

from acsprov.cli import main
from acsprov.crdsworld import ARCHIVE, CrdsRequest, MixedWorldsError, data_kind
from acsprov.errors import ReferenceFileError
from acsprov.fitsutil import sha256sum
from acsprov.reprocess import reprocess

CONTEXT = "hst_1234.pmap"

#: conftest's HRC exposure with Example 1's edits, from the archive: quick, and it needs
#: references of every kind calacs reads for HRC, plus a user bias copied from CRDS's.
HRC_RECIPE = SIMULATED_HRC_RECIPE.replace("hrcbias", "hrcarchive").replace(
    "source: simulate", "source: mast")


# ---------------------------------------------------------------------------------------
# fixtures: the two servers' content


@pytest.fixture(scope="module")
def crds_files(tmp_path_factory, crds_cache) -> Path:
    """What the loopback CRDS server holds: hst_1234.pmap over the simulator's references."""
    from acsprov.simulate.crds_cache import build_crds_cache

    root = tmp_path_factory.mktemp("crds_server")
    references = sorted((crds_cache / "references" / "hst").glob("*.fits"))
    build_crds_cache(root, references, context_serial=1234, link=False)
    return root


def archive_copy(src: Path, dst: Path, context: str = CONTEXT) -> list[Path]:
    """Archive-mode copies of simulated files: no SIMULATE/SIMSEED or simulator HISTORY,
    and the context the archive processed them with."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(src.glob("*.fits")):
        with fits.open(path) as hdul:
            for hdu in hdul:
                for key in ("SIMULATE", "SIMSEED"):
                    hdu.header.remove(key, ignore_missing=True, remove_all=True)
                history = [str(h) for h in hdu.header.get("HISTORY", [])]
                hdu.header.remove("HISTORY", ignore_missing=True, remove_all=True)
                for line in history:
                    if "simulat" not in line.lower():
                        hdu.header.add_history(line)
            if path.name.endswith(("_raw.fits", "_flt.fits", "_flc.fits")):
                hdul[0].header["CRDS_CTX"] = context
            hdul.writeto(dst / path.name)
        out.append(dst / path.name)
    return out


@pytest.fixture(scope="module")
def archive_files(tmp_path_factory) -> callable:
    """dataset -> directory of its archive-mode files (simulated once per module)."""
    from acsprov.simulate import simulate_dataset

    made: dict[str, Path] = {}

    def get(dataset: str) -> Path:
        if dataset not in made:
            sim = tmp_path_factory.mktemp(f"sim_{dataset}")
            simulate_dataset(dataset, sim)
            made[dataset] = tmp_path_factory.mktemp(f"mast_{dataset}")
            archive_copy(sim, made[dataset])
        return made[dataset]

    return get


@contextmanager
def servers(crds_files: Path, mast_root: Path) -> Iterator[tuple[CrdsServer, str]]:
    state = CrdsServer(crds_files / "mappings" / "hst", crds_files / "references" / "hst",
                       CONTEXT)
    with serve(state) as crds, serve_mast(mast_root) as mast:
        yield crds, mast.url


def _recipe(tmp_path: Path, text: str = HRC_RECIPE) -> Path:
    path = tmp_path / "hrcarchive.yaml"
    path.write_text(text)
    return path


def _prov(root: Path) -> dict:
    docs = sorted((root / "prov").glob("*.json"))
    return json.loads(docs[-1].read_text())


def _reference_entities(doc: dict) -> dict[str, dict]:
    return {e["acsprov:path"]: e for e in doc["entity"].values()
            if str(e.get("acsprov:path", "")).startswith("jref$")}


def _pixels(path: Path) -> list[np.ndarray]:
    with fits.open(path) as hdul:
        return [np.array(h.data) for h in hdul if h.data is not None]


# ---------------------------------------------------------------------------------------
# archive data, real CRDS


def test_archive_run_fetches_verifies_and_records_exactly_its_references(
        tmp_path, crds_files, archive_files, monkeypatch, capsys):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    cache = tmp_path / "crds"  # empty: everything must come from the server
    with servers(crds_files, archive_files("j8is01020")) as (crds, mast_url):
        said: list[str] = []
        result = reprocess(str(_recipe(tmp_path)), workdir=tmp_path / "work",
                           mast_url=mast_url, say=said.append,
                           crds=CrdsRequest(url=crds.url, path=cache))
    world = result.world
    assert world is not None and world.kind == ARCHIVE
    assert world.context == CONTEXT and world.server == crds.url
    # the context was resolved once, from the server, before any reference was fetched
    assert crds.calls[0] == "get_default_context"
    assert any("archive data" in line and CONTEXT in line for line in said)

    doc = _prov(result.root)
    used = _reference_entities(doc)
    fetched = sorted(n for n in crds.downloads if n.endswith(".fits"))
    # exactly the references the run used were downloaded, each once
    assert fetched == sorted({p.split("$", 1)[1] for p in used})
    assert len(fetched) == len(set(fetched)) and len(fetched) >= 5, fetched
    jref = cache / "references" / "hst" / "acs"
    assert sorted(p.name for p in jref.glob("*.fits")) == fetched
    served = crds_files / "references" / "hst"
    for path, entity in used.items():
        name = path.split("$", 1)[1]
        assert entity["acsprov:crds_name"] == name
        assert entity["acsprov:crds_sha1"] == sha1(served / name) == sha1(jref / name)
        assert entity["acsprov:sha256"] == sha256sum(served / name)
        assert entity["acsprov:crds_context"] == CONTEXT
        assert entity["acsprov:crds_server"] == crds.url
    steps = [a for a in doc["activity"].values()
             if a["prov:type"]["$"] in ("acsprov:calacs", "acsprov:bestrefs")]
    assert steps and all(a["acsprov:crds_context"] == CONTEXT and
                         a["acsprov:crds_server"] == crds.url for a in steps)
    flt = result.root / "example" / "j8is01j2q_flt.fits"
    assert fits.getheader(flt)["CRDS_CTX"] == CONTEXT
    assert "SIMULATE" not in fits.getheader(flt)

    # acsprov prov show prints the server, the context and each reference's checksums
    capsys.readouterr()
    assert main(["prov", "show", str(flt)]) == 0
    shown = capsys.readouterr().out
    for name in fetched:
        assert f"jref${name}" in shown
    assert f"crds {CONTEXT} {crds.url}" in shown
    assert f"sha1:{sha1(served / fetched[0])}" in shown


def test_offline_cache_gives_pixel_identical_products(tmp_path, crds_files, archive_files,
                                                     monkeypatch):
    """A CRDS_PATH synced earlier, CRDS_MODE=local, no server: the same products.

    The second run has the container image's environment (CRDS_CONTEXT pinned, the
    entrypoint's ACSPROV_CRDS_SOURCE): it does what a host run with that context does,
    and its PROV says the image's pin chose the context."""
    monkeypatch.delenv("ACSPROV_OFFLINE")
    cache = tmp_path / "crds"
    mast_root = archive_files("j8is01020")
    with servers(crds_files, mast_root) as (crds, mast_url):
        first = reprocess(str(_recipe(tmp_path)), workdir=tmp_path / "online",
                          mast_url=mast_url, say=lambda m: None,
                          crds=CrdsRequest(url=crds.url, path=cache))
    before = sorted(p.name for p in cache.rglob("*.fits"))
    monkeypatch.setenv("CRDS_MODE", "local")
    monkeypatch.setenv("CRDS_CONTEXT", CONTEXT)
    monkeypatch.setenv("ACSPROV_CRDS_SOURCE", f"pinned {CONTEXT} in {cache} for archive data")
    with serve_mast(mast_root) as mast:  # the CRDS server is gone
        second = reprocess(str(_recipe(tmp_path)), workdir=tmp_path / "offline",
                           mast_url=mast.url, say=lambda m: None,
                           crds=CrdsRequest(url="http://127.0.0.1:9", path=cache))
    assert second.world is not None and second.world.offline
    assert second.world.context == CONTEXT
    assert sorted(p.name for p in cache.rglob("*.fits")) == before
    for name in ("j8is01j2q_flt.fits",):
        a, b = first.root / "example" / name, second.root / "example" / name
        for x, y in zip(_pixels(a), _pixels(b), strict=True):
            np.testing.assert_array_equal(x, y)
    ref_a = {k: e["acsprov:sha256"] for k, e in _reference_entities(_prov(first.root)).items()}
    ref_b = {k: e["acsprov:sha256"] for k, e in _reference_entities(_prov(second.root)).items()}
    assert ref_a == ref_b
    chosen = {a.get("acsprov:crds_context_chosen_by")
              for a in _prov(second.root)["activity"].values() if "acsprov:crds_context" in a}
    assert chosen == {"CRDS_CONTEXT (the container image's pinned context)"}
    first_chosen = {a.get("acsprov:crds_context_chosen_by")
                    for a in _prov(first.root)["activity"].values()
                    if "acsprov:crds_context" in a}
    assert first_chosen == {"the server's operational context at the start of the run"}


def test_a_corrupted_reference_is_refused_with_one_line(tmp_path, crds_files, archive_files,
                                                       monkeypatch, capsys):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    cache = tmp_path / "crds"
    with servers(crds_files, archive_files("j8is01020")) as (crds, mast_url):
        bias = fits.getheader(archive_files("j8is01020") / "j8is01j2q_raw.fits")["BIASFILE"]
        bad = bias.split("$", 1)[1]
        crds.corrupt.add(bad)
        code = main(["reprocess", str(_recipe(tmp_path)), "--workdir", str(tmp_path / "w"),
                     "--mast-url", mast_url, "--crds-url", crds.url,
                     "--crds-path", str(cache)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("acsprov: error:")
    assert bad in err[0] and "sha1sum" in err[0] and "does not match" in err[0]
    assert not (cache / "references" / "hst" / "acs" / bad).exists()  # not kept for later
    assert not list((tmp_path / "w" / "hrcarchive" / "example").glob("*_flt.fits"))
    raw = tmp_path / "w" / "hrcarchive" / "example" / "j8is01j2q_raw.fits"
    assert fits.getheader(raw)["BIASFILE"] == bias  # bestrefs left the file as it was


def test_unreachable_server_without_cache_fails_naming_server_context_and_file(
        tmp_path, crds_files, archive_files, monkeypatch, capsys):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    with serve_mast(archive_files("j8is01020")) as mast:
        code = main(["reprocess", str(_recipe(tmp_path)), "--workdir", str(tmp_path / "w"),
                     "--mast-url", mast.url, "--crds-url", "http://127.0.0.1:9",
                     "--crds-path", str(tmp_path / "empty"), "--context", CONTEXT])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ReferenceFileError.exit_code and len(err) == 1
    assert "http://127.0.0.1:9" in err[0] and f"first missing file: {CONTEXT}" in err[0]


# ---------------------------------------------------------------------------------------
# never mixed


def test_simulated_data_with_the_real_crds_is_refused_before_anything_is_written(
        tmp_path, capsys):
    work = tmp_path / "work"
    code = main(["reprocess", "j8is01merged", "--source", "simulate", "--workdir", str(work),
                 "--crds-url", "http://127.0.0.1:9", "--context", CONTEXT])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == MixedWorldsError.exit_code and len(err) == 1
    assert "simulated data" in err[0] and "--crds-url http://127.0.0.1:9" in err[0]
    assert not work.exists()


def test_simulated_data_say_loudly_they_use_the_synthetic_context(tmp_path, crds_cache,
                                                                  monkeypatch):
    """What `make reprocess` offline does: simulated data, synthetic context, said twice;
    the handbook's CRDS variables in the environment are not used for them."""
    monkeypatch.setenv("CRDS_SERVER_URL", "https://hst-crds.stsci.edu")
    recipe = tmp_path / "hrcbias.yaml"
    recipe.write_text(SIMULATED_HRC_RECIPE)
    said: list[str] = []
    result = reprocess(str(recipe), workdir=tmp_path / "w", crds_path=crds_cache,
                       say=said.append)
    assert result.world is not None and result.world.kind == "simulated"
    assert result.world.context == "hst_9001.pmap"
    assert any("ignoring CRDS_SERVER_URL" in line for line in said)
    assert any("SIMULATED data, calibrated with acsprov's synthetic CRDS context "
               "hst_9001.pmap" in line for line in said)
    assert "SIMULATED data with the SYNTHETIC CRDS context hst_9001.pmap" in said[-1]
    refs = _reference_entities(_prov(result.root))
    assert refs and {e["acsprov:crds_world"] for e in refs.values()} == {"simulated"}


def test_archive_data_with_the_synthetic_cache_is_refused_before_anything_is_written(
        tmp_path, crds_cache, capsys, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.setenv("CRDS_PATH", str(crds_cache))  # as `eval "$(acsprov env)"` leaves it
    code = main(["reprocess", str(_recipe(tmp_path)), "--workdir", str(work),
                 "--mast-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == MixedWorldsError.exit_code and len(err) == 1
    assert "archive data" in err[0] and "synthetic" in err[0] and "hst_9001.pmap" in err[0]
    assert not work.exists()
    code = main(["reprocess", str(_recipe(tmp_path)), "--workdir", str(work),
                 "--mast-url", "http://127.0.0.1:9", "--crds-path", str(crds_cache)])
    assert code == MixedWorldsError.exit_code and not work.exists()


def test_archive_files_from_an_auto_source_are_refused_with_the_synthetic_cache(
        tmp_path, crds_cache, archive_files, monkeypatch):
    """When only the data tell (source auto), they are checked before any step runs."""
    monkeypatch.delenv("ACSPROV_OFFLINE")
    monkeypatch.setenv("CRDS_PATH", str(crds_cache))
    recipe = _recipe(tmp_path, HRC_RECIPE.replace("source: mast", "source: auto"))
    with serve_mast(archive_files("j8is01020")) as mast, \
            pytest.raises(MixedWorldsError, match="archive data are never calibrated"):
        reprocess(str(recipe), workdir=tmp_path / "w", mast_url=mast.url,
                  say=lambda m: None)
    assert not (tmp_path / "w" / "hrcarchive" / "example").exists()


def test_a_mixture_of_simulated_and_archive_files_is_refused(tmp_path, archive_files):
    from acsprov.simulate import simulate_dataset

    sim = simulate_dataset("j8is01020", tmp_path / "sim")
    real = sorted(archive_files("j8is01020").glob("*_raw.fits"))
    assert data_kind(real) == ARCHIVE and data_kind(sim) == "simulated"
    with pytest.raises(MixedWorldsError, match="refusing to mix"):
        data_kind([*real, *sim])


# ---------------------------------------------------------------------------------------
# any dataset: fetch, recipe new, the archive audit


def test_fetch_obtains_asn_raw_flt_flc_and_spt_of_any_dataset(tmp_path, monkeypatch, capsys):
    from helpers import make_asn, make_raw

    root = tmp_path / "mast"
    root.mkdir()
    make_asn(root / "ja0b01010_asn.fits", [("JA0B01A1Q", "EXP-DTH", True),
                                           ("JA0B01010", "PROD-DTH", True)])
    for suffix in ("raw", "flt", "flc", "spt"):
        make_raw(root / f"ja0b01a1q_{suffix}.fits")
    monkeypatch.chdir(tmp_path)
    with serve_mast(root) as mast:
        assert main(["fetch", "ja0b01010", "--source", "mast", "--mast-url", mast.url]) == 0
    got = sorted(p.name for p in (tmp_path / "ja0b01010").iterdir())
    assert got == ["ja0b01010_asn.fits", "ja0b01a1q_flc.fits", "ja0b01a1q_flt.fits",
                   "ja0b01a1q_raw.fits", "ja0b01a1q_spt.fits"]
    assert "from MAST" in capsys.readouterr().out


def test_recipe_new_for_another_dataset_then_reprocess_runs_to_the_end(
        tmp_path, crds_files, archive_files, monkeypatch, capsys):
    monkeypatch.delenv("ACSPROV_OFFLINE")
    out = tmp_path / "mine.yaml"
    with servers(crds_files, archive_files("j8is01020")) as (crds, mast_url):
        assert main(["recipe", "new", "j8is01020", "--like", "j8e654010", "--out", str(out),
                     "--mast-url", mast_url]) == 0
        text = out.read_text()
        # members from the association table MAST served; Example 4's edits; comments
        assert "j8is01j2q_raw.fits" in text and "j8is01j3q_raw.fits" in text
        assert "DARKFILE: mydark.fits" in text and "PCTECORR: OMIT" in text
        assert "# What to change:" in text and "crds_context" in text
        assert main(["recipe", "new", "j8is01020", "--out", str(out)]) != 0  # never replaced
        capsys.readouterr()
        code = main(["reprocess", str(out), "--workdir", str(tmp_path / "w"),
                     "--mast-url", mast_url, "--crds-url", crds.url,
                     "--crds-path", str(tmp_path / "crds")])
    said = capsys.readouterr()
    assert code == 0, said.err
    run = tmp_path / "w" / "j8is01020" / "recalibrate"
    assert sorted(p.name for p in run.glob("*_fl?.fits")) == ["j8is01j2q_flt.fits",
                                                              "j8is01j3q_flt.fits"]
    assert (run / "j8is01021_crj.fits").is_file()
    header = fits.getheader(run / "j8is01j2q_flt.fits")
    assert header["DARKFILE"] == "mydark.fits" and header["CRDS_CTX"] == CONTEXT
    assert f"CRDS context {CONTEXT}" in said.out


def test_reproduce_archive_uses_exactly_the_archive_header_settings(
        tmp_path, crds_files, archive_files, monkeypatch):
    from acsprov.audit.archive import reproduce_archive
    from acsprov.keywords import REFERENCE_KEYWORDS

    monkeypatch.delenv("ACSPROV_OFFLINE")
    mast_root = archive_files("j8is01020")
    with servers(crds_files, mast_root) as (crds, mast_url):
        rep = reproduce_archive("j8is01020", workdir=tmp_path / "w", mast_url=mast_url,
                                crds=CrdsRequest(url=crds.url, path=tmp_path / "crds"),
                                say=lambda m: None)
    assert rep.context == rep.used_context == CONTEXT
    root = tmp_path / "w" / "j8is01020_archive"
    doc = _prov(root)
    actions = [a["prov:type"]["$"] for a in doc["activity"].values()]
    assert "acsprov:bestrefs" not in actions  # the header's references, not new ones
    named = set()
    for member in ("j8is01j2q", "j8is01j3q"):
        flt = fits.getheader(mast_root / f"{member}_flt.fits")
        ours = fits.getheader(root / "reproduce" / f"{member}_flt.fits")
        for key in REFERENCE_KEYWORDS:
            if str(flt.get(key, "N/A")).startswith("jref$"):
                named.add(flt[key][5:])
                assert ours[key] == flt[key], key
        assert ours["CRDS_CTX"] == flt["CRDS_CTX"] == CONTEXT
    used = {p[5:] for p in _reference_entities(doc)}
    read = {n for n in used if n in named}
    assert read and used <= named  # no reference the archive header does not name
    # fetched: every reference the headers name (calacs reads a subset of them), no other
    assert sorted(n for n in crds.downloads if n.endswith(".fits")) == sorted(named)
    # calacs versions side by side, and agreement within the noise
    assert set(rep.versions) == {"j8is01j2q_flt.fits", "j8is01j3q_flt.fits"}
    for archive_version, ours in rep.versions.values():
        assert archive_version != "?" and ours != "?"
    assert len(rep.noise) == 2
    for row in rep.noise:
        assert row["pixels"] > 0.9 * 1024 * 1024
        # measured: median 0.007 and 0.021 ERR, rms 0.009 and 0.023 ERR, all within 1 ERR
        assert abs(row["median_sigma"]) < 0.1 and row["rms_sigma"] < 0.1
        assert row["within_1sigma"] > 0.99
    assert any("calacs" in n and "(archive)" in n for n in rep.result.notes)


# ---------------------------------------------------------------------------------------
# end to end: Handbook Examples 1 and 2 on archive data


@pytest.mark.slow
def test_jd1y04010_from_mast_with_the_real_crds_end_to_end(
        tmp_path, crds_files, archive_files, monkeypatch, capsys):
    """The handbook's set-up (CRDS_SERVER_URL, an empty CRDS_PATH), `acsprov reprocess
    jd1y04010 --source mast`; then the same recipe on the same inputs with the
    references it fetched, locally (CRDS_MODE=local, no server): identical pixels."""
    monkeypatch.delenv("ACSPROV_OFFLINE")
    cache = tmp_path / "crds_cache_hst"
    mast_root = archive_files("jd1y04010")
    with servers(crds_files, mast_root) as (crds, mast_url):
        monkeypatch.setenv("CRDS_SERVER_URL", crds.url)
        monkeypatch.setenv("CRDS_PATH", str(cache))
        monkeypatch.setenv("jref", f"{cache}/references/hst/acs/")
        code = main(["reprocess", "jd1y04010", "--source", "mast", "--workdir",
                     str(tmp_path / "online"), "--mast-url", mast_url])
        said = capsys.readouterr()
        assert code == 0, said.err
    assert f"archive data calibrated with CRDS context {CONTEXT} from {crds.url}" in said.out
    assert "SIMULATED" not in said.out
    root = tmp_path / "online" / "jd1y04010"
    used = _reference_entities(_prov(root))
    fetched = sorted(n for n in crds.downloads if n.endswith(".fits"))
    assert fetched == sorted({p.split("$", 1)[1] for p in used})
    assert "8ch1518tj_cte.fits" in fetched  # named by Example 1's edit, not by bestrefs
    jref = cache / "references" / "hst" / "acs"
    assert sorted(p.name for p in jref.glob("*.fits")) == fetched
    for path, entity in used.items():
        assert entity["acsprov:crds_sha1"] == sha1(crds_files / "references" / "hst" /
                                                   path.split("$", 1)[1])
    products = sorted(p.relative_to(root) for p in root.glob("example*/*_f??.fits")) + \
        sorted(p.relative_to(root) for p in root.glob("example*/*_crj.fits"))
    assert [p.as_posix() for p in products] == [
        "example1/jd1y04rlq_flc.fits", "example1/jd1y04rlq_flt.fits",
        "example2/jd1y04rlq_flt.fits", "example2/jd1y04rnq_flt.fits",
        "example2/jd1y04011_crj.fits"]

    monkeypatch.setenv("CRDS_MODE", "local")
    monkeypatch.setenv("CRDS_SERVER_URL", "http://127.0.0.1:9")
    with serve_mast(mast_root) as mast:
        code = main(["reprocess", "jd1y04010", "--source", "mast", "--workdir",
                     str(tmp_path / "local"), "--mast-url", mast.url])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in jref.glob("*.fits")) == fetched  # nothing more fetched
    for rel in products:
        for a, b in zip(_pixels(root / rel), _pixels(tmp_path / "local" / "jd1y04010" / rel),
                        strict=True):
            np.testing.assert_array_equal(a, b)


def test_recipe_crds_context_is_validated():
    from acsprov.errors import RecipeError
    from acsprov.recipe import parse_recipe

    base = {"name": "x", "datasets": ["j8is01020"],
            "runs": [{"name": "r", "steps": [{"copy": {"files": ["a_raw.fits"]}}]}]}
    assert parse_recipe({**base, "crds_context": CONTEXT}).crds_context == CONTEXT
    assert parse_recipe(base).crds_context is None
    for bad in ("hst_1234.imap", "../hst_1.pmap", "jwst_1.pmap"):
        with pytest.raises(RecipeError, match="not an HST CRDS context name"):
            parse_recipe({**base, "crds_context": bad})


def test_new_recipe_text_loads_and_keeps_the_example_edits():
    from acsprov.newrecipe import new_recipe_text
    from acsprov.recipe import parse_recipe

    text = new_recipe_text("jd5702jpq", ["jd5702jpq"], like="jd5702jpq")
    recipe = parse_recipe(yaml.safe_load(text))
    steps = [s.action for s in recipe.runs[0].steps]
    assert steps == ["copy", "bestrefs", "set_header", "calacs"]
    edits = recipe.runs[0].steps[2].params["set"]
    assert edits == {"PCTECORR": "PERFORM", "PCTETAB": "jref$8ch1518tj_cte.fits",
                     "DRKCFILE": "jref$9362018jj_dkc.fits"}
    assert recipe.runs[0].steps[3].params["input"] == ("jd5702jpq_raw.fits",)
    assert text.startswith("# Recipe for JD5702JPQ")
