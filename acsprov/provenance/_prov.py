"""Building and writing the W3C-PROV document of a run (the only module importing `prov`).

Identifiers never contain file names: an entity is named by its content hash and a
digest of its path (``ent:<sha256>-<path digest>``), with the real path kept as the
``acsprov:path`` attribute, so names with spaces or odd characters survive RDF round
trips.  Times are timezone-aware UTC.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import prov.model as pm
from prov.constants import PROV_LABEL, PROV_ROLE, PROV_TYPE

from .records import ActivityRecord, FileEntity, RunRecord

__all__ = ["ACSPROV_NS", "EXPORT_FORMATS", "build_document", "read_document", "serialize"]

ACSPROV_NS = "https://w3id.org/acsprov/ns#"
_ENTITY_NS = "https://w3id.org/acsprov/entity/"
_AGENT_NS = "https://w3id.org/acsprov/agent/"
_RUN_NS = "urn:uuid:"

#: Export format -> (prov serializer format, rdf format, file suffix)
EXPORT_FORMATS: dict[str, tuple[str, str | None, str]] = {
    "json": ("json", None, ".json"),
    "provn": ("provn", None, ".provn"),
    "xml": ("xml", None, ".xml"),
    "turtle": ("rdf", "turtle", ".ttl"),
    "trig": ("rdf", "trig", ".trig"),
    "jsonld": ("rdf", "json-ld", ".jsonld"),
}


def entity_id(entity: FileEntity) -> str:
    """The identifier (local part) of a file entity."""
    path_digest = hashlib.sha1(entity.path.encode()).hexdigest()[:12]
    return f"sha256-{entity.sha256}-{path_digest}"


def build_document(run: RunRecord) -> pm.ProvDocument:
    """The PROV document of `run`."""
    doc = pm.ProvDocument()
    acs = doc.add_namespace("acsprov", ACSPROV_NS)
    ent = doc.add_namespace("ent", _ENTITY_NS)
    agt = doc.add_namespace("agent", _AGENT_NS)
    act_ns = doc.add_namespace("act", _RUN_NS)

    software_attrs = {PROV_TYPE: pm.PROV["SoftwareAgent"], PROV_LABEL: "acsprov"}
    software_attrs.update({acs[f"version_{k}"]: v for k, v in sorted(run.software.items())})
    if run.image:
        software_attrs.update({acs[f"image_{k}"]: v for k, v in sorted(run.image.items())})
    software = doc.agent(agt[f"acsprov-{run.software.get('acsprov', 'unknown')}"],
                         software_attrs)
    user = doc.agent(agt[f"user-{_safe(run.user)}"],
                     {PROV_TYPE: pm.PROV["Person"], PROV_LABEL: run.user})
    doc.actedOnBehalfOf(software, user)
    run_attrs = {PROV_TYPE: acs["Run"], PROV_LABEL: run.name, acs["root"]: run.root}
    if run.aliases:
        run_attrs[acs["aliases"]] = json.dumps(run.aliases, sort_keys=True)
    if run.cleared:
        run_attrs[acs["cleared"]] = json.dumps(run.cleared)
    run_entity = doc.entity(acs[f"run-{run.run_id}"], run_attrs)

    seen: dict[str, pm.ProvEntity] = {}

    def entity(item: FileEntity) -> pm.ProvEntity:
        if item.key not in seen:
            attrs = {
                PROV_LABEL: Path(item.path).name,
                PROV_TYPE: acs["ReferenceFile"] if item.external else acs["File"],
                acs["path"]: item.path,
                acs["sha256"]: item.sha256,
            }
            if item.size is not None:
                attrs[acs["size"]] = item.size
            attrs.update({acs[k]: v for k, v in sorted(item.attributes.items())})
            seen[item.key] = doc.entity(ent[entity_id(item)], attrs)
        elif "keyword" in item.attributes and not seen[item.key].get_attribute(
                acs["keyword"]):
            # a file first recorded as made (mybias.fits, a copy) and then read as a
            # reference file: it is one, for every query
            seen[item.key].add_attributes({acs["keyword"]: item.attributes["keyword"]})
        return seen[item.key]

    engines: dict[str, pm.ProvAgent] = {}
    for record in run.activities:
        activity = _activity(doc, acs, act_ns, record)
        doc.wasAssociatedWith(activity, software, None, None, {PROV_ROLE: "software"})
        doc.wasAssociatedWith(activity, user, None, None, {PROV_ROLE: "operator"})
        doc.used(activity, run_entity, None, None, {PROV_ROLE: "run"})
        if record.engine:
            key = f"{record.engine.get('name', 'engine')}-{record.engine.get('version', '')}"
            if key not in engines:
                attrs = {PROV_TYPE: pm.PROV["SoftwareAgent"],
                         PROV_LABEL: record.engine.get("name", "engine")}
                attrs.update({acs[k]: v for k, v in sorted(record.engine.items())})
                engines[key] = doc.agent(agt[_safe(key)], attrs)
                doc.actedOnBehalfOf(engines[key], software)
            doc.wasAssociatedWith(activity, engines[key], None, None, {PROV_ROLE: "engine"})
        if record.informed_by:
            doc.wasInformedBy(activity, act_ns[record.informed_by])
        for item in record.used:
            doc.used(activity, entity(item), None, None, {PROV_ROLE: item.role})
        for item in record.generated:
            doc.wasGeneratedBy(entity(item), activity, record.ended, None,
                               {PROV_ROLE: item.role})
        by_key = {i.key: i for i in record.used + record.generated}
        for generated_key, used_key in record.derivations:
            if generated_key in by_key and used_key in by_key:
                source = by_key[used_key]
                doc.wasDerivedFrom(entity(by_key[generated_key]), entity(source),
                                   activity, other_attributes={PROV_ROLE: source.role})
    return doc


def _activity(doc: pm.ProvDocument, acs: pm.Namespace, act_ns: pm.Namespace,
              record: ActivityRecord) -> pm.ProvActivity:
    attrs = {
        PROV_TYPE: acs[record.action],
        PROV_LABEL: record.label,
        acs["status"]: record.status,
        acs["parameters"]: record.params_json(),
    }
    if record.command:
        attrs[acs["command"]] = record.command
    if record.cwd is not None:
        attrs[acs["cwd"]] = record.cwd
    if record.message:
        attrs[acs["message"]] = record.message
    attrs.update({acs[k]: v for k, v in sorted(record.attributes.items())})
    return doc.activity(act_ns[record.id], record.started, record.ended, attrs)


#: Each qualified PROV-O relation and the unqualified one it implies
#: (qualifying property, the influencer's property, unqualified property).
UNQUALIFIED = (
    ("qualifiedDerivation", "entity", "wasDerivedFrom"),
    ("qualifiedUsage", "entity", "used"),
    ("qualifiedGeneration", "activity", "wasGeneratedBy"),
    ("qualifiedAssociation", "agent", "wasAssociatedWith"),
    ("qualifiedCommunication", "activity", "wasInformedBy"),
    ("qualifiedDelegation", "agent", "actedOnBehalfOf"),
)


def with_unqualified(graph: Any) -> Any:
    """Add to an rdflib graph the unqualified PROV-O relation beside each qualified
    one (``?x prov:wasDerivedFrom ?y`` beside ``?x prov:qualifiedDerivation [prov:entity
    ?y]``), so that the usual queries (``prov:wasDerivedFrom+``) find them.

    The triples are those of the SPARQL update ``INSERT { ?x prov:UNQUALIFIED ?y }
    WHERE { ?x prov:QUALIFIED ?q . ?q prov:INFLUENCER ?y }``, found by walking the
    graph (rdflib's SPARQL engine alone takes longer to load than the export)."""
    from rdflib import Namespace

    prov = Namespace("http://www.w3.org/ns/prov#")
    for qualified, influencer, unqualified in UNQUALIFIED:
        found = [(x, y) for x, q in graph.subject_objects(prov[qualified])
                 for y in graph.objects(q, prov[influencer])]
        for x, y in found:
            graph.add((x, prov[unqualified], y))
    return graph


def serialize(doc: pm.ProvDocument, fmt: str) -> str:
    """`doc` in one of :data:`EXPORT_FORMATS`; the RDF ones carry both the qualified
    and the unqualified PROV-O relations."""
    kind, rdf_format, _ = EXPORT_FORMATS[fmt]
    if kind == "rdf":
        import rdflib

        dataset = rdflib.Dataset()
        dataset.parse(data=doc.serialize(format="rdf", rdf_format="trig"), format="trig")
        graph = rdflib.Graph()
        for s, p, o, _ in dataset.quads():
            graph.add((s, p, o))
        for prefix, namespace in dataset.namespaces():
            graph.bind(prefix, namespace, override=True)
        with_unqualified(graph)
        return graph.serialize(format=rdf_format)
    if kind == "json":
        # prov's JSON serializer itself: doc.serialize() would first load every
        # serializer prov has (rdflib among them), a second of imports for one format
        from prov.serializers.provjson import ProvJSONSerializer

        buffer = io.StringIO()
        ProvJSONSerializer(doc).serialize(buffer)
        return json.dumps(json.loads(buffer.getvalue()), indent=1, sort_keys=True)
    return doc.serialize(format=kind)


def read_document(path: Path, fmt: str = "json") -> pm.ProvDocument:
    """Read a PROV document written by :func:`serialize` (json or xml)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return pm.ProvDocument.deserialize(io.BytesIO(data), format=fmt)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text) or "unknown"
