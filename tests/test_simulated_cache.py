"""The per-user cache of simulated downloads (acsprov.simulate.downloads)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from acsprov.fitsutil import sha256sum
from acsprov.simulate.downloads import (
    MANIFEST,
    cache_key,
    default_downloads_path,
    fingerprint,
    simulate_cached,
)

DATASET = "j8is01020"  # HRC: small


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, bytes]:
    """The dataset simulated anew, without any cache: name -> bytes."""
    from acsprov.simulate import simulate_dataset

    out = tmp_path_factory.mktemp("fresh")
    return {p.name: p.read_bytes() for p in simulate_dataset(DATASET, out, seed=11)}


def _contents(files) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in files}


def test_the_cache_lives_beside_the_local_crds_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_downloads_path() == tmp_path / "acsprov" / "simulated"
    monkeypatch.setenv("ACSPROV_SIMULATED_PATH", str(tmp_path / "elsewhere"))
    assert default_downloads_path() == tmp_path / "elsewhere"


def test_filled_once_then_reused_byte_identical_to_a_fresh_simulation(tmp_path, fresh):
    cache = tmp_path / "cache"
    said: list[str] = []
    first = simulate_cached(DATASET, tmp_path / "run1", seed=11, cache=cache, say=said.append)
    assert not first.reused and first.key == cache_key(DATASET, 11)
    assert _contents(first.files) == fresh
    assert first.sha256 == {n: sha256sum(tmp_path / "run1" / n) for n in fresh}
    manifest = json.loads((cache / first.key / MANIFEST).read_text())
    assert {f["name"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        n: (len(b), first.sha256[n]) for n, b in fresh.items()}
    assert [p.name for p in cache.iterdir() if p.name.startswith(f".{first.key}.")
            and p.is_dir()] == []  # no staging left behind

    again = simulate_cached(DATASET, tmp_path / "run2", seed=11, cache=cache, say=said.append)
    assert again.reused and again.key == first.key
    assert [p.name for p in again.files] == [p.name for p in first.files]
    assert _contents(again.files) == fresh
    assert said == []
    other = simulate_cached(DATASET, tmp_path / "run3", seed=12, cache=cache, say=said.append)
    assert not other.reused and other.key != first.key  # another seed: other data


def test_editing_the_run_s_files_never_reaches_the_cache(tmp_path, fresh):
    cache = tmp_path / "cache"
    got = simulate_cached(DATASET, tmp_path / "run", seed=11, cache=cache, say=print)
    raw = tmp_path / "run" / "j8is01j2q_raw.fits"
    assert raw.stat().st_nlink == 1  # a copy, not a link into the cache
    with open(raw, "r+b") as fh:  # as a recipe's set_header edits a raw file in place
        fh.seek(100)
        fh.write(b"EDITED")
    assert (cache / got.key / raw.name).read_bytes() == fresh[raw.name]
    again = simulate_cached(DATASET, tmp_path / "run2", seed=11, cache=cache, say=print)
    assert again.reused and _contents(again.files) == fresh


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove", "manifest"])
def test_a_damaged_entry_is_rebuilt_never_used(tmp_path, fresh, damage):
    cache = tmp_path / "cache"
    key = simulate_cached(DATASET, tmp_path / "run1", seed=11, cache=cache, say=print).key
    victim = cache / key / "j8is01j2q_flt.fits"
    if damage == "flip":  # same size, other content: only the sha256 tells
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:2880])
    elif damage == "remove":
        victim.unlink()
    else:
        (cache / key / MANIFEST).write_text("{not json")
    said: list[str] = []
    got = simulate_cached(DATASET, tmp_path / "run2", seed=11, cache=cache, say=said.append)
    assert not got.reused
    assert said and "simulating again" in said[0]
    assert _contents(got.files) == fresh
    assert (cache / key / victim.name).read_bytes() == fresh[victim.name]  # rebuilt
    assert simulate_cached(DATASET, tmp_path / "run3", seed=11, cache=cache,
                           say=print).reused


def test_a_fill_killed_before_its_rename_leaves_no_entry_that_is_used(tmp_path, fresh):
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        import acsprov.simulate.raw as raw
        from acsprov.simulate.downloads import simulate_cached
        real = raw.simulate_dataset
        def killed(*args, **kwargs):
            real(*args, **kwargs)  # every file written into the staging directory
            os.kill(os.getpid(), signal.SIGKILL)
        raw.simulate_dataset = killed
        simulate_cached({DATASET!r}, Path(sys.argv[1]), seed=11, cache=Path(sys.argv[2]))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run1"), str(cache)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == -9, proc.stderr
    key = cache_key(DATASET, 11)
    assert not (cache / key).exists()
    staged = [p for p in cache.iterdir() if p.name.startswith(f".{key}.") and p.is_dir()]
    assert staged and any(staged[0].iterdir())  # the killed fill's files, unnamed
    got = simulate_cached(DATASET, tmp_path / "run2", seed=11, cache=cache, say=print)
    assert not got.reused and _contents(got.files) == fresh
    assert all(not p.exists() for p in staged)  # swept by the next fill


def test_the_fingerprint_follows_the_simulator_code_and_libraries(tmp_path):
    source = tmp_path / "raw.py"
    source.write_text("x = 1\n")
    base = fingerprint([source], {"numpy": "2.0"})
    assert fingerprint([source], {"numpy": "2.1"}) != base
    source.write_text("x = 2\n")
    assert fingerprint([source], {"numpy": "2.0"}) != base
    assert cache_key(DATASET, 11).startswith(f"{DATASET}-s11-")


RECIPE = """
name: hrccopy
title: "HRC files copied"
source: simulate
datasets: [j8is01020]
runs:
  - name: r
    steps:
      - copy: {files: [j8is01j2q_raw.fits]}
"""


def test_a_recipe_run_records_that_its_data_came_from_the_cache(tmp_path, crds_cache,
                                                                monkeypatch):
    from acsprov.provenance.query import documents
    from acsprov.reprocess import reprocess

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    monkeypatch.setenv("ACSPROV_SIMULATED_PATH", str(tmp_path / "simulated"))
    first = reprocess(str(recipe), workdir=tmp_path / "a", crds_path=crds_cache,
                      say=lambda m: None, datalad=False, seed=11)
    second = reprocess(str(recipe), workdir=tmp_path / "b", crds_path=crds_cache,
                       say=lambda m: None, datalad=False, seed=11)
    assert first.obtained[0].reused == "" and second.obtained[0].reused == "cache"

    def obtain_activity(root: Path) -> dict:
        doc = json.loads(documents(root)[-1].read_text())
        return next(a for a in doc["activity"].values()
                    if str(a["prov:type"]["$"]).endswith(":obtain"))

    made, had = obtain_activity(first.root), obtain_activity(second.root)
    key = cache_key(DATASET, 11)
    assert made["acsprov:simulated"] == had["acsprov:simulated"] == "true"
    assert made["acsprov:reused"] == "no" and had["acsprov:reused"] == "cache"
    assert made["acsprov:cache_key"] == had["acsprov:cache_key"] == key
    assert had["acsprov:source"] == "simulate"
    for name in ("j8is01j2q_raw.fits", "j8is01020_asn.fits"):
        assert (sha256sum(first.root / "cal_fits" / name)
                == sha256sum(second.root / "cal_fits" / name))
