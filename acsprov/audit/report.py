"""Audit reports: one self-contained HTML page and a JSON document with a published schema.

The HTML page opens with a pass/fail banner, then gives, for each product, the header
keywords that differ (switches and reference files first), a table per extension
(pixels outside the tolerance, where, by how much, DQ bits changed, statistics) and,
for each chip, a picture: the image, its differences (the largest of each block, so
that a single changed pixel stays visible, with the differing region boxed) and a
full-resolution cut-out around the largest difference.  Pictures are matplotlib PNGs
embedded as base64, so the page is one file that can be mailed or archived.

The JSON report follows ``acsprov/schemas/audit-report.schema.json``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from ..fitsutil import atomic_path
from .compare import DEFAULT_TOLERANCES, ExtensionDiff, ProductDiff
from .replay import AuditResult

__all__ = ["SCHEMA_ID", "load_schema", "report_data", "validate_report", "write_report"]

SCHEMA_ID = "https://w3id.org/acsprov/schemas/audit-report/1.0"


# -- JSON ---------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def report_data(result: AuditResult) -> dict[str, Any]:
    """The JSON report of `result` (see the schema)."""
    tolerances = {**DEFAULT_TOLERANCES, **result.tolerances}
    data = {
        "$schema": SCHEMA_ID,
        "kind": result.kind,
        "target": result.target,
        "passed": result.passed,
        "summary": result.summary(),
        "started": result.started,
        "seconds": round(result.seconds, 3),
        "labels": {"a": result.labels[0], "b": result.labels[1]},
        "engine": dict(result.engine),
        "tolerances": {k: {"rtol": t.rtol, "atol": t.atol} for k, t in tolerances.items()},
        "notes": list(result.notes),
        "inputs": list(result.inputs),
        "missing": list(result.missing),
        "error": result.error,
        "simulated": list(result.simulated),
        "products": [p.as_dict() for p in result.products],
    }
    return _finite(data)


def load_schema() -> dict[str, Any]:
    """The JSON Schema of audit reports, as shipped with acsprov."""
    text = resources.files("acsprov").joinpath("schemas/audit-report.schema.json").read_text()
    return json.loads(text)


def validate_report(data: Any, schema: dict[str, Any] | None = None) -> None:
    """Check `data` against the audit-report schema.

    Uses the ``jsonschema`` package when it is installed, else acsprov's own checker of
    the keywords the schema uses (type, properties, required, additionalProperties,
    items, enum, minimum, $ref).

    Raises
    ------
    BadInputError
        Naming the first place where `data` breaks the schema.
    """
    schema = schema or load_schema()
    try:
        import jsonschema
    except ImportError:
        _check(data, schema, schema, "$")
        return
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as err:
        raise BadInputError(f"audit report breaks its schema at {err.json_path}: "
                            f"{err.message}") from None


_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "number": (int, float), "integer": int,
}


def _check(value: Any, node: dict[str, Any], root: dict[str, Any], where: str) -> None:
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    types = node.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = any(isinstance(value, _TYPES[n]) and not (
            n in ("number", "integer") and isinstance(value, bool)) for n in names)
        if not ok:
            raise BadInputError(f"audit report breaks its schema at {where}: "
                                f"{type(value).__name__} is not {'/'.join(names)}")
    if "enum" in node and value not in node["enum"]:
        raise BadInputError(f"audit report breaks its schema at {where}: {value!r} not in "
                            f"{node['enum']}")
    if "minimum" in node and isinstance(value, (int, float)) and value < node["minimum"]:
        raise BadInputError(f"audit report breaks its schema at {where}: {value} < "
                            f"{node['minimum']}")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                raise BadInputError(f"audit report breaks its schema at {where}: "
                                    f"missing {key!r}")
        properties = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], root, f"{where}.{key}")
            elif extra is False:
                raise BadInputError(f"audit report breaks its schema at {where}: "
                                    f"unexpected {key!r}")
            elif isinstance(extra, dict):
                _check(item, extra, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            _check(item, node["items"], root, f"{where}[{index}]")


# -- pictures ---------------------------------------------------------------------
def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, facecolor=fig.get_facecolor())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def chip_figure(exts: list[ExtensionDiff], labels: tuple[str, str]) -> str | None:
    """A PNG (base64) of one chip: image, differences per extension, zoom on the peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    by_name = {e.extname: e for e in exts if e.preview is not None}
    if not by_name:
        return None
    sci = by_name.get("SCI") or next(iter(by_name.values()))
    diffs = [by_name[n] for n in ("SCI", "ERR", "DQ") if n in by_name] or [sci]
    zoomed = next((e for e in diffs if e.zoom is not None), None)
    panels = 1 + len(diffs) + (1 if zoomed else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.1 * panels, 3.3), dpi=100,
                             facecolor="white", squeeze=False)
    axes = list(axes[0])
    image = sci.preview
    finite = image[np.isfinite(image)]
    low, high = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
    span = max(float(high - low), 1e-12)
    stretched = np.arcsinh(np.clip((image - low) / span, 0, None) * 10) / np.arcsinh(10)
    extent = _extent(sci)
    axes[0].imshow(stretched, origin="lower", cmap="gray", extent=extent,
                   interpolation="nearest")
    axes[0].set_title(f"{sci.extname},{sci.extver} ({labels[0]})", fontsize=9)
    for ax, ext in zip(axes[1:], diffs, strict=False):
        delta = ext.delta_preview
        if ext.extname == "DQ":
            vmax = 1.0
            shown = ax.imshow(np.abs(delta) > 0, origin="lower", cmap="Reds", vmin=0, vmax=1,
                              extent=_extent(ext), interpolation="nearest")
            title = f"DQ,{ext.extver}: flags changed"
        else:
            vmax = float(np.max(np.abs(delta))) or 1.0
            shown = ax.imshow(delta, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                              extent=_extent(ext), interpolation="nearest")
            title = f"{ext.label}: {labels[1]} − {labels[0]}"
            cbar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
            cbar.ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
        if ext.bbox:
            b = ext.bbox
            pad = max(2.0, 0.01 * max(ext.shape))
            ax.add_patch(Rectangle((b["x0"] - 0.5 - pad, b["y0"] - 0.5 - pad),
                                   b["x1"] - b["x0"] + 1 + 2 * pad,
                                   b["y1"] - b["y0"] + 1 + 2 * pad,
                                   fill=False, edgecolor="#f0a202", linewidth=1.6))
        if ext.peak:  # a ring of fixed size on screen: one pixel is findable at any scale
            ax.plot([ext.peak["x"]], [ext.peak["y"]], marker="o", markersize=16,
                    markerfacecolor="none", markeredgecolor="#00b050", markeredgewidth=2.2)
            ax.annotate(f"x={ext.peak['x']}, y={ext.peak['y']}",
                        (ext.peak["x"], ext.peak["y"]), xytext=(0.03, 0.04),
                        textcoords="axes fraction", fontsize=8, color="#006b2e",
                        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
        else:
            ax.text(0.5, 0.5, "identical", transform=ax.transAxes, ha="center", va="center",
                    fontsize=12, color="#1b7f3b", fontweight="bold",
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#1b7f3b"})
    if zoomed is not None:
        ax = axes[-1]
        y0, x0 = zoomed.zoom_origin
        ny, nx = zoomed.zoom.shape
        vmax = float(np.max(np.abs(zoomed.zoom))) or 1.0
        ax.imshow(zoomed.zoom, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                  extent=(x0 + 0.5, x0 + nx + 0.5, y0 + 0.5, y0 + ny + 0.5),
                  interpolation="nearest")
        ax.set_title(f"{zoomed.label} around x={zoomed.peak['x']}, y={zoomed.peak['y']}",
                     fontsize=9)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def _extent(ext: ExtensionDiff) -> tuple[float, float, float, float]:
    ny, nx = ext.shape[-2:]
    return (0.5, nx + 0.5, 0.5, ny + 0.5)


# -- HTML ---------------------------------------------------------------------------
_CSS = """
:root { --ok:#1b7f3b; --bad:#b3261e; --ink:#1d2330; --muted:#5b6475; --line:#e3e7ee;
        --bg:#f6f8fb; --card:#ffffff; --accent:#2d5be3; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:linear-gradient(120deg,#16213e,#2d5be3); color:white; padding:28px 40px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; }
header p { margin:0; opacity:.85; }
main { max-width:1280px; margin:0 auto; padding:24px 40px 60px; }
.banner { border-radius:14px; padding:22px 28px; color:white; display:flex; gap:24px;
          align-items:center; box-shadow:0 6px 24px rgba(20,30,60,.15); margin:-48px 0 24px; }
.banner.ok { background:linear-gradient(120deg,#157a37,#2fb463); }
.banner.bad { background:linear-gradient(120deg,#9d1f18,#e0533f); }
.banner .verdict { font-size:28px; font-weight:800; letter-spacing:.5px; white-space:nowrap; }
.banner .text { font-size:15px; opacity:.95; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:14px;
         margin-bottom:26px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px;
        padding:14px 18px; }
.card .n { font-size:28px; font-weight:700; }
.card.error { border-color:var(--bad); color:var(--bad); margin-bottom:22px; }
.card .l { color:var(--muted); font-size:13px; text-transform:uppercase; letter-spacing:.6px; }
section.product { background:var(--card); border:1px solid var(--line); border-radius:14px;
                  padding:18px 22px; margin-bottom:22px; }
section.product h2 { margin:0 0 10px; font-size:19px; display:flex; gap:12px;
                     align-items:center; font-family:ui-monospace,Menlo,Consolas,monospace; }
.badge { font:600 12px/1 system-ui,sans-serif; padding:5px 10px; border-radius:999px;
         color:white; text-transform:uppercase; letter-spacing:.6px; }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); }
.badge.warn { background:#c77700; }
h3 { font-size:15px; margin:18px 0 8px; color:var(--muted); text-transform:uppercase;
     letter-spacing:.7px; }
table { border-collapse:collapse; width:100%; font-size:13.5px; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { background:#f0f3f8; font-weight:600; color:#323a4a; }
tr.bad td { background:#fff3f1; } tr.ok td:first-child { border-left:4px solid var(--ok); }
tr.bad td:first-child { border-left:4px solid var(--bad); }
td.num { font-variant-numeric:tabular-nums; text-align:right; white-space:nowrap; }
code, .mono { font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12.5px; }
.kw-switch { color:#7a3db8; font-weight:600; } .kw-ref { color:#0b6e99; font-weight:600; }
figure { margin:14px 0 4px; } figure img { max-width:100%; border:1px solid var(--line);
         border-radius:10px; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
details { background:var(--card); border:1px solid var(--line); border-radius:12px;
          padding:12px 18px; margin-bottom:16px; }
summary { cursor:pointer; font-weight:600; }
ul.notes { color:var(--muted); }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
.simulated { background:#fff4c2; border:2px solid #c77700; color:#5a3b00; border-radius:12px;
             padding:12px 18px; margin-bottom:18px; font-size:15px; }
.muted { color:var(--muted); font-weight:400; }
footer { color:var(--muted); font-size:12.5px; text-align:center; padding:24px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def _keyword_class(keyword: str, product: ProductDiff) -> str:
    if any(d["keyword"] == keyword for d in product.switch_differences):
        return "kw-switch"
    if any(d["keyword"] == keyword for d in product.reference_differences):
        return "kw-ref"
    return ""


def _header_table(product: ProductDiff, labels: tuple[str, str]) -> str:
    rows = []
    ordered = (product.switch_differences + product.reference_differences
               + [d for d in product.header_differences
                  if d not in product.switch_differences + product.reference_differences])
    for d in ordered:
        kind = ("switch" if d in product.switch_differences else
                "reference file" if d in product.reference_differences else "keyword")
        rows.append(f"<tr><td class='{_keyword_class(d['keyword'], product)} mono'>"
                    f"{_e(d['keyword'])}</td><td>{kind}</td><td class='mono'>{_e(d['a'])}</td>"
                    f"<td class='mono'>{_e(d['b'])}</td></tr>")
    for ext in product.extensions:
        for d in ext.header_differences:
            rows.append(f"<tr><td class='mono'>{_e(d['keyword'])}</td><td>{_e(ext.label)} "
                        f"header</td><td class='mono'>{_e(d['a'])}</td>"
                        f"<td class='mono'>{_e(d['b'])}</td></tr>")
    if not rows:
        return "<p>No header differences (volatile keywords ignored).</p>"
    return (f"<table><tr><th>Keyword</th><th>Kind</th><th>{_e(labels[0])}</th>"
            f"<th>{_e(labels[1])}</th></tr>{''.join(rows)}</table>")


def _region(ext: ExtensionDiff) -> str:
    if not ext.bbox:
        return "—"
    b = ext.bbox
    size = (b["x1"] - b["x0"] + 1, b["y1"] - b["y0"] + 1)
    return (f"x {b['x0']}–{b['x1']}, y {b['y0']}–{b['y1']}"
            f"<br><span class='mono'>{size[0]}×{size[1]} px</span>")


#: ACS DQ flags (ACS Data Handbook, table of data quality flags).
DQ_FLAGS: dict[int, str] = {
    1: "Reed-Solomon error", 2: "data fill", 4: "bad detector pixel", 8: "masked",
    16: "hot pixel", 32: "CTE tail", 64: "warm pixel", 128: "bad column",
    256: "full-well saturation", 512: "bad reference pixel", 1024: "sink pixel",
    2048: "A-to-D saturation", 4096: "cosmic ray (AstroDrizzle)",
    8192: "cosmic ray (ACSREJ)", 16384: "user flag", 32768: "unused",
}


def _dq(ext: ExtensionDiff) -> str:
    """DQ flags gained and lost, by name and number of pixels."""
    def line(sign: str, bit: str, n: int) -> str:
        return f"{sign}{bit} {_e(DQ_FLAGS.get(int(bit), ''))}: {n:,} px"

    parts = [line("+", b, n) for b, n in sorted(ext.dq_set.items(), key=lambda i: int(i[0]))]
    parts += [line("−", b, n) for b, n in sorted(ext.dq_cleared.items(),
                                                  key=lambda i: int(i[0]))]
    return "<br>".join(parts) if parts else "—"


def _peak(ext: ExtensionDiff) -> str:
    return f"x={ext.peak['x']}, y={ext.peak['y']}" if ext.peak else "—"


def _extension_table(product: ProductDiff, labels: tuple[str, str]) -> str:
    rows = []
    for ext in product.extensions:
        state = "ok" if ext.identical else "bad"
        rows.append(
            f"<tr class='{state}'><td class='mono'>{_e(ext.label)}</td>"
            f"<td class='mono'>{'×'.join(str(s) for s in ext.shape[::-1])}</td>"
            f"<td class='mono'>{_num(ext.tolerance.rtol)} / {_num(ext.tolerance.atol)}</td>"
            f"<td class='num'>{ext.n_outside:,}</td>"
            f"<td class='num'>{_num(100 * ext.fraction_outside, 3)} %</td>"
            f"<td class='num'>{'flags' if ext.max_abs_diff is None else _num(ext.max_abs_diff)}"
            f"</td><td class='num'>{_num(ext.max_rel_diff)}</td>"
            f"<td>{_region(ext)}</td><td class='mono'>{_peak(ext)}</td>"
            f"<td class='mono'>{_dq(ext)}</td>"
            f"<td class='num'>{_num(ext.stats_a.get('mean'))}<br>"
            f"{_num(ext.stats_b.get('mean'))}</td>"
            f"<td class='num'>{_num(ext.stats_a.get('std'))}<br>"
            f"{_num(ext.stats_b.get('std'))}</td></tr>")
    if not rows:
        return "<p>No image extensions.</p>"
    return ("<table><tr><th>Extension</th><th>Size</th><th>rtol / atol</th>"
            "<th>Pixels outside</th><th>Fraction</th><th>Max |Δ|</th><th>Max rel.</th>"
            "<th>Region (FITS x, y)</th><th>Largest difference at</th>"
            "<th>DQ flags (+gained / −lost)</th>"
            f"<th>Mean<br>{_e(labels[0])} / {_e(labels[1])}</th>"
            f"<th>Std<br>{_e(labels[0])} / {_e(labels[1])}</th></tr>"
            f"{''.join(rows)}</table>")


def _figures(product: ProductDiff, labels: tuple[str, str]) -> str:
    out = []
    for extver in sorted({e.extver for e in product.extensions}):
        chip = [e for e in product.extensions if e.extver == extver]
        png = chip_figure(chip, labels)
        if png is None:
            continue
        worst = [e for e in chip if not e.identical and e.bbox]
        caption = ("; ".join(f"{e.label}: {e.n_outside:,} px outside tolerance in x "
                             f"{e.bbox['x0']}–{e.bbox['x1']}, y {e.bbox['y0']}–{e.bbox['y1']}, "
                             f"max |Δ| {_num(e.max_abs_diff)}" for e in worst)
                   or "no pixel outside the tolerance")
        out.append(f"<figure><img alt='differences of chip {extver} of {_e(product.name)}' "
                   f"src='data:image/png;base64,{png}'><figcaption>Chip {extver}: "
                   f"{_e(caption)}. Difference maps keep the largest difference of each "
                   "block, so single pixels stay visible.</figcaption></figure>")
    return "".join(out)


def _product_section(product: ProductDiff, labels: tuple[str, str]) -> str:
    state = "ok" if product.identical else "bad"
    word = "identical" if product.identical else "differs"
    structure = ("".join(f"<li>{_e(s)}</li>" for s in product.structure))
    images = ""
    if product.extensions:
        images = (f"<h3>Extensions</h3>{_extension_table(product, labels)}"
                  f"<h3>Differences per chip</h3>{_figures(product, labels)}")
    elif not structure:
        images = "<p>No image extensions; table extensions identical.</p>"
    return (f"<section class='product' id='{_e(_anchor(product.name))}'>"
            f"<h2>{_e(product.name)} <span class='badge {state}'>{word}</span></h2>"
            f"<h3>Header: switches, reference files, keywords</h3>"
            f"{_header_table(product, labels)}"
            + (f"<h3>Structure</h3><ul>{structure}</ul>" if structure else "")
            + f"{images}</section>")


def _anchor(name: str) -> str:
    return "p-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def _column(p: ProductDiff, name: str) -> str:
    """One extension kind of a product in the overview: pixels outside and by how much."""
    exts = [e for e in p.extensions if e.extname == name]
    if not exts:
        return "—"
    outside = sum(e.n_outside for e in exts)
    if name == "DQ":
        gained = sum(sum(e.dq_set.values()) for e in exts)
        lost = sum(sum(e.dq_cleared.values()) for e in exts)
        return (f"{outside:,} px changed<br>+{gained:,} flags / −{lost:,}" if outside
                else "identical")
    worst = max((e.max_abs_diff or 0.0 for e in exts), default=0.0)
    return f"{outside:,} px<br>max |Δ| {_num(worst)}" if outside else "identical"


def _overview(products: list[ProductDiff], labels: tuple[str, str]) -> str:
    """One row per product, linking to its section: its own switches and references,
    then SCI, ERR and DQ apart (DQ as flags gained and lost, never as numbers)."""
    rows = []
    for p in products:
        state = "ok" if p.identical else "bad"
        own = "<br>".join(f"<span class='{_keyword_class(d['keyword'], p)}'>"
                          f"{_e(d['keyword'])}</span>={_e(d['b'])} "
                          f"<span class='muted'>({_e(labels[0])} {_e(d['a'])})</span>"
                          for d in p.switch_differences + p.reference_differences) or "none"
        rows.append(
            f"<tr class='{state}'><td class='mono'><a href='#{_e(_anchor(p.name))}'>"
            f"{_e(p.name)}</a></td><td><span class='badge {state}'>"
            f"{'identical' if p.identical else 'differs'}</span></td>"
            f"<td class='mono'>{own}</td>"
            + "".join(f"<td class='num'>{_column(p, n)}</td>" for n in ("SCI", "ERR", "DQ"))
            + "</tr>")
    return ("<table class='overview'><tr><th>Product</th><th>Verdict</th>"
            "<th>Its switches and reference files that differ</th><th>SCI</th><th>ERR</th>"
            f"<th>DQ flags</th></tr>{''.join(rows)}</table>")


def _inputs(inputs: Iterable[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr class='{'ok' if i.get('status') == 'ok' else 'bad'}'><td class='mono'>"
        f"{_e(i.get('path'))}</td><td>{_e(i.get('kind'))}</td><td>{_e(i.get('status'))}</td>"
        f"<td>{_e(i.get('message'))}</td><td class='mono'>"
        f"{_e(str(i.get('recorded') or '')[:16])}</td></tr>" for i in inputs)
    return ("<table><tr><th>Input</th><th>Kind</th><th>Status</th><th>Check</th>"
            f"<th>Recorded sha256</th></tr>{rows}</table>")


def _headline(result: AuditResult) -> str:
    """The summary without the per-product details (the page gives those)."""
    parts = result.summary().split("; ")
    keep = 3 if result.kind == "archive" else 2
    return "; ".join(parts[:keep]) + ("; …" if len(parts) > keep else "")


def _simulated_banner(result: AuditResult) -> str:
    if not result.simulated:
        return ""
    names = ", ".join(result.simulated)
    return (f"<div class='simulated' id='simulated'><b>SIMULATED DATA</b> — "
            f"{len(result.simulated)} of {len(result.products)} products were made from "
            "acsprov's simulator, not from real Hubble observations (SIMULATE = T): "
            f"<span class='mono'>{_e(names)}</span></div>")


def render_html(result: AuditResult) -> str:
    """The self-contained HTML page of `result`."""
    labels = result.labels
    differing = [p for p in result.products if not p.identical]
    if result.kind == "rerun":
        title = "Reproducibility audit: re-run from provenance"
        verdict = "REPRODUCED" if result.passed else "NOT REPRODUCED"
    else:
        title = "Archive audit: recalibrated products vs the archive's"
        verdict = "MATCHES THE ARCHIVE" if result.passed else "DIFFERS FROM THE ARCHIVE"
    bad_inputs = [i for i in result.inputs if i.get("status") != "ok"]
    cards = [
        (len(result.products), "products compared"),
        (len(result.products) - len(differing), "identical within tolerance"),
        (len(differing), "differ"),
        (len(result.missing), "missing"),
    ]
    if result.kind == "rerun":
        cards.append((f"{len(result.inputs) - len(bad_inputs)}/{len(result.inputs)}",
                      "inputs as recorded"))
    cards.append((len(result.simulated), "from simulated data"))
    card_html = "".join(f"<div class='card'><div class='n'>{_e(n)}</div>"
                        f"<div class='l'>{_e(label)}</div></div>" for n, label in cards)
    tolerance_text = ", ".join(f"{k}: rtol {_num(t.rtol)}, atol {_num(t.atol)}" for k, t in
                               {**DEFAULT_TOLERANCES, **result.tolerances}.items())
    missing = "".join(f"<li>{_e(m)}</li>" for m in result.missing)
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.notes)
    engine = ", ".join(f"{k}: {v}" for k, v in result.engine.items())
    ordered = sorted(result.products, key=lambda p: p.identical)
    sections = "".join(_product_section(p, labels) for p in ordered)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} — {_e(Path(result.target).name)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{_e(title)}</h1>
<p><span class="mono">{_e(result.target)}</span> · {_e(result.started)} ·
{result.seconds:.1f} s{(' · engine ' + _e(engine)) if engine else ''}</p></header>
<main>
<div class="banner {'ok' if result.passed else 'bad'}">
<div class="verdict">{'✔' if result.passed else '✘'} {verdict}</div>
<div class="text">{_e(_headline(result))}</div></div>
{_simulated_banner(result)}
<div class="cards">{card_html}</div>
{f'<div class="card error"><b>{_e(result.error)}</b></div>' if result.error else ''}
<p>Compared: <b>{_e(labels[0])}</b> (first) and <b>{_e(labels[1])}</b> (second).
Tolerances: {_e(tolerance_text)}; a pixel is outside when
|second − first| &gt; atol + rtol·|second|.  Keywords ignored: dates, provenance
pointers and HISTORY.</p>
{f'<details open><summary>Missing products</summary><ul>{missing}</ul></details>'
   if missing else ''}
<section class="product"><h2>Products</h2>{_overview(ordered, labels)}</section>
{sections}
{f'<details {"open" if bad_inputs else ""}><summary>Inputs ({len(result.inputs)} checked, '
 f'{len(bad_inputs)} not as recorded)</summary>{_inputs(result.inputs)}</details>'
 if result.inputs else ''}
<details><summary>Notes</summary><ul class="notes">{notes}</ul></details>
</main>
<footer>acsprov audit report · JSON twin beside this page, schema {_e(SCHEMA_ID)}</footer>
</body></html>
"""


def write_report(result: AuditResult, directory: Path, *, stem: str = "audit") -> list[Path]:
    """Write ``<stem>.html`` and ``<stem>.json`` into `directory` (atomically)."""
    directory = Path(directory)
    data = report_data(result)
    validate_report(data)
    html_path, json_path = directory / f"{stem}.html", directory / f"{stem}.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(result), encoding="utf-8")
    return [html_path, json_path]
