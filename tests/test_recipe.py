"""Recipes: the shipped ones load; malformed ones fail with one clear line."""

from __future__ import annotations

import copy

import pytest

from acsprov.errors import DatasetError, RecipeError
from acsprov.recipe import available_recipes, load_recipe, parse_recipe

GOOD = {
    "name": "demo",
    "datasets": ["jd1y04010"],
    "runs": [
        {
            "name": "r1",
            "steps": [
                {"copy": {"files": ["jd1y04rlq_raw.fits"]}},
                {"set_header": {"files": ["*_raw.fits"], "set": {"PCTECORR": "OMIT"}}},
                {"bestrefs": {"files": ["jd1y04rlq_raw.fits"]}},
                {"calacs": {"input": "jd1y04rlq_raw.fits"}},
            ],
        }
    ],
}


def test_every_handbook_example_has_a_recipe():
    names = available_recipes()
    assert {"jd1y04010", "j8is01merged", "j8e654010", "jd5702jpq"} <= set(names)
    runs = {run.name for name in names for run in load_recipe(name).runs}
    assert {"example1", "example2", "example3", "example4", "example5"} <= runs


def test_example_edits_are_the_handbooks():
    ex = {run.name: run for name in available_recipes() for run in load_recipe(name).runs}
    edits = lambda run: {  # noqa: E731
        k: v for s in run.steps if s.action == "set_header" for k, v in s.params["set"].items()
    }
    assert edits(ex["example1"]) == {"BIASFILE": "mybias.fits",
                                     "PCTETAB": "jref$8ch1518tj_cte.fits"}
    assert edits(ex["example2"]) == {"BIASFILE": "mybias.fits", "PCTECORR": "OMIT"}
    assert edits(ex["example4"]) == {"DARKFILE": "mydark.fits", "PCTECORR": "OMIT"}
    assert edits(ex["example5"]) == {"PCTECORR": "PERFORM",
                                     "PCTETAB": "jref$8ch1518tj_cte.fits",
                                     "DRKCFILE": "jref$9362018jj_dkc.fits"}
    merge = next(s for s in ex["example3"].steps if s.action == "merge_asn")
    assert merge.params["rows"] == 2
    assert merge.params["add_row"] == ("J8IS01xx1", "PROD_CRJ", "yes")


def test_good_recipe_parses():
    recipe = parse_recipe(GOOD)
    assert recipe.source == "auto"
    assert [s.action for s in recipe.runs[0].steps] == ["copy", "set_header", "bestrefs",
                                                         "calacs"]


def _broken(path: list, value):
    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_broken(["runs", 0, "steps", 1, "set_header", "set"], {"PCTECORR": "YES"}),
         "PCTECORR='YES' is not a switch value"),
        (_broken(["runs", 0, "steps", 1, "set_header", "set"], {"NOSUCHKEY": "OMIT"}),
         "NOSUCHKEY is not an ACS calibration switch"),
        (_broken(["runs", 0, "steps", 0], {"frobnicate": {}}), "unknown step 'frobnicate'"),
        (_broken(["runs", 0, "steps", 0, "copy", "files"], ["../../etc/passwd"]),
         "is not a plain file name"),
        (_broken(["datasets"], ["../x"]), "is not a plain rootname"),
        (_broken(["source"], "ftp"), "source 'ftp' is not one of"),
        (_broken(["runs", 0, "steps", 3, "calacs"], {}), "missing input"),
        (_broken(["runs", 0, "colour"], "blue"), "unknown field"),
        ([1, 2], "a recipe is a mapping"),
    ],
)
def test_malformed_recipes_fail_with_one_line(data, message):
    with pytest.raises(RecipeError, match=message) as info:
        parse_recipe(data)
    assert "\n" not in str(info.value)


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="unknown dataset 'nosuchdata'.*jd1y04010"):
        load_recipe("nosuchdata")


def test_bad_yaml_is_a_recipe_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)
