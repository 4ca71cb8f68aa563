"""web/json_patch.py: applied by a JSON Patch implementation of others (`jsonpatch`), it always gives the new value."""

from __future__ import annotations

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st

from web.json_patch import json_patch

keys = st.text(alphabet=st.sampled_from("ab/~~0 é步"), min_size=0, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@given(json_values, json_values)
def test_applying_the_patch_to_the_old_value_gives_the_new_one(old, new):
    assert jsonpatch.apply_patch(old, json_patch(old, new)) == new


@given(json_values)
def test_an_unchanged_value_needs_no_operations(value):
    assert json_patch(value, value) == []


def test_a_growing_list_gets_appends_not_a_replacement():
    old = {"recipe": {"steps": ["Boil water."], "servings": None}}
    new = {"recipe": {"steps": ["Boil water.", "Add the noodles."], "servings": 2}}
    assert json_patch(old, new) == [
        {"op": "add", "path": "/recipe/steps/-", "value": "Add the noodles."},
        {"op": "replace", "path": "/recipe/servings", "value": 2},
    ]
