"""A picture of a run's provenance graph (SVG and PNG), drawn with matplotlib.

Activities are boxes laid out left to right in the order they ran; files are ellipses
placed in the column of the activity that generated them (inputs nobody generated,
such as reference files, in the column before their first use).  Arrows follow PROV's
direction: from an activity to what it used, from a file to the activity that
generated it.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..fitsutil import atomic_path

__all__ = ["draw_graph"]

_COLOURS = {"activity": "#9fb1fc", "file": "#fffc87", "reference": "#ffd1a4"}


def _layout(doc: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    activities = doc.get("activity") or {}
    order = sorted(activities, key=lambda a: activities[a].get("prov:startTime", ""))
    column = {a: i * 2 + 1 for i, a in enumerate(order)}
    kinds = {a: "activity" for a in activities}
    for gen in (doc.get("wasGeneratedBy") or {}).values():
        entity, activity = gen.get("prov:entity"), gen.get("prov:activity")
        if activity in column:
            column.setdefault(entity, column[activity] + 1)
    for use in (doc.get("used") or {}).values():
        entity, activity = use.get("prov:entity"), use.get("prov:activity")
        if activity in column and entity not in column:
            column[entity] = column[activity] - 1
    entities = doc.get("entity") or {}
    for eid, ent in entities.items():
        kind = str((ent.get("prov:type") or {}).get("$", ""))
        if kind == "acsprov:Run":
            continue
        kinds[eid] = "reference" if kind == "acsprov:ReferenceFile" else "file"
        column.setdefault(eid, 0)
    rows: dict[int, int] = defaultdict(int)
    positions = {}
    for node in sorted(kinds, key=lambda n: (column[n], n)):
        positions[node] = (float(column[node]), -float(rows[column[node]]))
        rows[column[node]] += 1
    return positions, kinds


def _label(doc: dict[str, Any], node: str, kind: str) -> str:
    if kind == "activity":
        text = str(doc["activity"][node].get("prov:type", {}).get("$", node)).split(":")[-1]
    else:
        text = Path(str(doc["entity"][node].get("acsprov:path", node))).name
    return "\n".join(textwrap.wrap(text, 18)) or node


def draw_graph(document: Path, out: Path, *, formats: tuple[str, ...] = ("svg", "png")
               ) -> list[Path]:
    """Draw the PROV-JSON `document` to ``out.svg``/``out.png``; return the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(Path(document).read_text())
    positions, kinds = _layout(doc)
    ncols = max((int(x) for x, _ in positions.values()), default=0) + 1
    nrows = max((int(-y) for _, y in positions.values()), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * ncols), max(3, 0.9 * nrows)))
    edges = [(u.get("prov:activity"), u.get("prov:entity"))
             for u in (doc.get("used") or {}).values()]
    edges += [(g.get("prov:entity"), g.get("prov:activity"))
              for g in (doc.get("wasGeneratedBy") or {}).values()]
    for src, dst in edges:
        if src in positions and dst in positions:
            ax.annotate("", xy=positions[dst], xytext=positions[src],
                        arrowprops={"arrowstyle": "->", "color": "#777777", "lw": 0.6,
                                    "shrinkA": 14, "shrinkB": 14})
    for node, (x, y) in positions.items():
        kind = kinds[node]
        box = "round,pad=0.3" if kind == "activity" else "ellipse,pad=0.3"
        ax.text(x, y, _label(doc, node, kind), ha="center", va="center", fontsize=6,
                bbox={"boxstyle": box, "fc": _COLOURS[kind], "ec": "#444444", "lw": 0.6})
    ax.set_xlim(-0.8, ncols - 0.2)
    ax.set_ylim(-nrows + 0.3, 0.7)
    ax.axis("off")
    ax.set_title(f"provenance of {Path(document).stem}", fontsize=9)
    written = []
    for fmt in formats:
        target = out.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written
