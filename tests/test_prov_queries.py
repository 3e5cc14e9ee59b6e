"""PROV-O queries with rdflib's SPARQL on a run's Turtle export.

The run is an HRC association recalibrated with a user bias (``mybias.fits``, a copy
of the default bias) as Handbook Example 2 does: its ``_crj`` must lead back to every
reference file, the user's included, through plain ``prov:wasDerivedFrom`` links.
"""

from __future__ import annotations

import json

import pytest
import rdflib

from acsprov.provenance.query import lineage, render_tree

PREFIXES = """PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX acsprov: <https://w3id.org/acsprov/ns#>
"""
CRJ = "example2/j8is01021_crj.fits"
MYBIAS = "example2/mybias.fits"


@pytest.fixture(scope="module")
def graph(recorded_hrc_asn_run):
    (turtle,) = (recorded_hrc_asn_run.root / "prov").glob("*.ttl")
    g = rdflib.Graph()
    g.parse(turtle, format="turtle")
    return g


def select(graph, query: str, **bindings: str) -> list[tuple]:
    values = {k: rdflib.Literal(v) for k, v in bindings.items()}
    return [tuple(row) for row in graph.query(PREFIXES + query, initBindings=values)]


def test_all_references_behind_the_crj(graph, recorded_hrc_asn_run):
    rows = select(graph, """
        SELECT DISTINCT ?path ?keyword WHERE {
            ?product acsprov:path ?product_path ;
                     prov:wasDerivedFrom+ ?ref .
            ?ref acsprov:keyword ?keyword ; acsprov:path ?path .
        }""", product_path=CRJ)
    found = {(str(p), str(k)) for p, k in rows}
    assert (MYBIAS, "BIASFILE") in found
    keywords = {k for _, k in found}
    # the calibration files of the steps that ran (HRC, CR rejection of a repeat asn)
    assert {"BIASFILE", "BPIXTAB", "CCDTAB", "OSCNTAB", "DARKFILE", "PFLTFILE",
            "CRREJTAB"} <= keywords
    # exactly what the calacs activity read, plus the default bias mybias.fits copies
    doc = json.loads(next((recorded_hrc_asn_run.root / "prov").glob("*.json")).read_text())
    used_refs = {e["acsprov:path"] for e in doc["entity"].values() if e.get("acsprov:keyword")}
    assert {p for p, _ in found} <= used_refs


def test_the_derivation_names_the_role(graph):
    rows = select(graph, """
        SELECT DISTINCT ?role WHERE {
            ?product acsprov:path ?product_path ;
                     prov:qualifiedDerivation ?d .
            ?d prov:entity ?ref ; prov:hadRole ?role .
            ?ref acsprov:path ?ref_path .
        }""", product_path=CRJ, ref_path=MYBIAS)
    assert [str(r) for (r,) in rows] == ["biasfile"]


def test_every_product_made_with_a_reference(graph):
    rows = select(graph, """
        SELECT DISTINCT ?path WHERE {
            ?ref acsprov:path ?ref_path .
            ?product prov:wasDerivedFrom+ ?ref ; acsprov:path ?path .
            FILTER(STRENDS(?path, "_flt.fits") || STRENDS(?path, "_crj.fits"))
        }""", ref_path=MYBIAS)
    assert {str(p) for (p,) in rows} == {
        "example2/j8is01j2q_flt.fits", "example2/j8is01j3q_flt.fits", CRJ}


def test_every_header_edit_behind_a_product(graph):
    rows = select(graph, """
        SELECT DISTINCT ?activity ?changes WHERE {
            ?product acsprov:path ?product_path ; prov:wasDerivedFrom+ ?edited .
            ?edited prov:wasGeneratedBy ?activity .
            ?activity a acsprov:set_header ; acsprov:header_changes ?changes .
        }""", product_path=CRJ)
    assert len(rows) == 1  # one set_header step edited both members
    changes = json.loads(str(rows[0][1]))
    edited = {(c["file"], ch["keyword"], ch["after"]) for c in changes for ch in c["changes"]}
    assert edited == {("example2/j8is01j2q_raw.fits", "BIASFILE", "mybias.fits"),
                      ("example2/j8is01j3q_raw.fits", "BIASFILE", "mybias.fits")}


def test_unqualified_relations_beside_the_qualified_ones(graph):
    for qualified, influencer, plain in (
            ("qualifiedDerivation", "entity", "wasDerivedFrom"),
            ("qualifiedUsage", "entity", "used"),
            ("qualifiedGeneration", "activity", "wasGeneratedBy"),
            ("qualifiedAssociation", "agent", "wasAssociatedWith")):
        missing = select(graph, f"""
            SELECT (COUNT(*) AS ?n) WHERE {{
                ?x prov:{qualified} ?q . ?q prov:{influencer} ?y .
                FILTER NOT EXISTS {{ ?x prov:{plain} ?y }}
            }}""")
        total = select(graph, f"SELECT (COUNT(*) AS ?n) WHERE {{ ?x prov:{plain} ?y }}")
        assert int(missing[0][0]) == 0 and int(total[0][0]) > 0, plain


def test_prov_show_names_every_reference_and_marks_the_users(recorded_hrc_asn_run):
    root = recorded_hrc_asn_run.root
    text = render_tree(lineage(root / CRJ))
    assert "example2/mybias.fits" in text
    line = next(t for t in text.splitlines() if "example2/mybias.fits" in t)
    assert "BIASFILE, user-supplied" in line
    for keyword in ("BPIXTAB", "CCDTAB", "DARKFILE", "PFLTFILE", "CRREJTAB"):
        assert f"({keyword})" in text
    # the default bias shows only as what mybias.fits was copied from, never as used
    default_bias = [t for t in text.splitlines() if "_bia.fits" in t]
    assert default_bias and all("(BIASFILE)" in t for t in default_bias)
