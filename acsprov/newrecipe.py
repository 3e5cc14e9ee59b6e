"""``acsprov recipe new``: a recipe for any ACS association or single exposure.

The recipe recalibrates the dataset as the handbook does: copy the raw files, fill
their reference keywords from CRDS (``bestrefs``), apply the header edits of a chosen
handbook example as a starting point (with the ``copy_reference`` steps those edits
need, e.g. ``mybias.fits``), then calacs on the association (or the exposure).
Comments in the file say what to change.  The association's members are read from its
table (from MAST, or from the simulator's catalogue when MAST cannot be reached).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .asn import read_asn, validate_rootname
from .errors import DatasetError
from .fitsutil import atomic_path
from .recipe import available_recipes, load_recipe, parse_recipe

__all__ = ["DEFAULT_LIKE", "association_members", "new_recipe_text", "write_new_recipe"]

#: The handbook example whose header edits a new recipe starts from by default.
DEFAULT_LIKE = "jd1y04010"


def association_members(
    dataset: str, *, base_url: str | None = None, say: Callable[[str], None] = print
) -> list[str] | None:
    """Lower-case rootnames of a dataset's exposures, or None if the table is not available.

    An exposure rootname (ending in a letter) is its own only member.  An association's
    table is downloaded from MAST; when MAST cannot be reached the simulator's catalogue
    answers for the datasets it knows.
    """
    from .sources import SourceError, download_asn

    name = validate_rootname(dataset, where="recipe new").lower()
    if not name[-1].isdigit():
        return [name]
    with tempfile.TemporaryDirectory(prefix="acsprov-asn-") as tmp:
        try:
            table = download_asn(name, Path(tmp), base_url=base_url)
        except SourceError as err:
            say(f"{name}: association table not available from MAST ({err})")
            table = None
        if table is not None:
            return [m.name.lower() for m in read_asn(table).exposures]
    from .simulate import DATASETS

    if name in DATASETS:
        say(f"{name}: members from the simulator's catalogue (MAST not reached)")
        return [m.rootname.lower() for m in DATASETS[name].members]
    return None


def _example_edits(like: str) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    """The first run of recipe `like`: its copy_reference steps, header edits, handbook."""
    recipe = load_recipe(like)
    copies: list[dict[str, Any]] = []
    edits: dict[str, str] = {}
    for step in recipe.runs[0].steps:
        if step.action == "copy_reference":
            copies.append({"keyword": step.params["keyword"], "to": step.params["to"]})
        elif step.action == "set_header":
            edits.update({k: str(v) for k, v in step.params["set"].items()})
    return copies, edits, recipe.handbook or recipe.title


def new_recipe_text(dataset: str, members: Sequence[str], *,
                    like: str = DEFAULT_LIKE) -> str:
    """The YAML text of a new recipe for `dataset` (pure: no I/O beyond reading `like`).

    Parameters
    ----------
    dataset : str
        Association id or exposure rootname.
    members : sequence of str
        The exposures' rootnames.
    like : str
        A shipped recipe whose first run's header edits are the starting point.
    """
    name = validate_rootname(dataset, where="recipe new").lower()
    if like not in available_recipes():
        raise DatasetError(f"--like {like!r}: no such example; use one of "
                           f"{', '.join(available_recipes())}")
    copies, edits, handbook = _example_edits(like)
    association = name[-1].isdigit()
    if not members:
        raise DatasetError(f"{name}: no exposures to recalibrate")
    raws = [f"{validate_rootname(m).lower()}_raw.fits" for m in members]
    files = ([f"{name}_asn.fits"] if association else []) + raws
    steps: list[dict[str, Any]] = [{"copy": {"files": files}},
                                   {"bestrefs": {"files": raws}}]
    for item in copies:
        steps.append({"copy_reference": {"keyword": item["keyword"], "header_of": raws[0],
                                         "to": item["to"]}})
    if edits:
        steps.append({"set_header": {"files": raws, "set": edits}})
    steps.append({"calacs": {"input": f"{name}_asn.fits" if association else raws[0]}})
    data: dict[str, Any] = {
        "name": name,
        "title": f"Recalibrate {name.upper()} with the header edits of {like}",
        "source": "auto",
        "datasets": [name],
        "runs": [{"name": "recalibrate",
                  "description": f"{name.upper()} recalibrated as {handbook} does",
                  "steps": steps}],
    }
    parse_recipe(data)  # what is written must load
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=88)
    member_note = "# Exposures: " + ", ".join(m.upper() for m in members)
    header = f"""# Recipe for {name.upper()}, written by `acsprov recipe new {name} --like {like}`.
# Run it with: acsprov reprocess {name}.yaml [--source mast]
{member_note}
# What to change:
#   - set_header: the header edits of {like} ({handbook}) are a starting point:
#     switches (PERFORM / OMIT) and reference keywords, either jref$name.fits (a CRDS
#     reference, fetched into CRDS_PATH for archive data) or a file of the run
#     directory made by copy_reference (mybias.fits, mydark.fits).  Remove what you
#     do not want changed.
#   - copy_reference: copies the reference CRDS selected for a keyword under a name of
#     your own, for you to edit or replace.
#   - crds_context: add `crds_context: hst_NNNN.pmap` to pin the CRDS context of
#     archive data; without it the server's operational context is used and recorded.
#   - calacs options: {{engine: native|hstcal}} and others, see README.
"""
    return header + body


def write_new_recipe(dataset: str, out: Path, *, like: str = DEFAULT_LIKE,
                     members: Sequence[str] | None = None,
                     base_url: str | None = None,
                     say: Callable[[str], None] = print) -> Path:
    """Write a new recipe for `dataset` to `out` (refusing to replace an existing file)."""
    if out.exists():
        raise DatasetError(f"{out} exists; give another --out or remove it")
    if members is None:
        members = association_members(dataset, base_url=base_url, say=say)
    if members is None:
        raise DatasetError(f"{dataset}: its association table cannot be read (MAST not "
                           "reached, and the simulator does not know it); try again online")
    text = new_recipe_text(dataset, members, like=like)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out

