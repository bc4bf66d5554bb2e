# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""GroupSpec: single, binned and intersected attributes, stable ids, round trip, unknown policies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monai_fair.data import GroupSpec

SEX = {"female": "F", "male": "M"}


def test_single_attribute_ids_follow_declared_order():
    spec = GroupSpec.categorical("sex", ["M", "F"], aliases=SEX)
    ids = spec.encode([{"sex": "F"}, {"sex": "male"}, {"sex": " Female "}, {"sex": "m"}])
    np.testing.assert_array_equal(ids, [1, 0, 1, 0])
    assert spec.group_names == ["M", "F"] and spec.num_groups == 2


def test_binned_attribute_edges():
    spec = GroupSpec.binned("age", [0, 40, 60, float("inf")], labels=["young", "middle", "old"])
    ids = spec.encode([{"age": 0}, {"age": 39.99}, {"age": "40"}, {"age": 59}, {"age": 60}, {"age": 101}])
    np.testing.assert_array_equal(ids, [0, 0, 1, 1, 2, 2])
    assert GroupSpec.binned("age", [0, 40, 60, float("inf")]).group_names == ["0-40", "40-60", ">=60"]
    with pytest.raises(ValueError, match=r"row 1 \(age=-3\)"):
        spec.encode([{"age": 5}, {"age": -3}])
    with pytest.raises(ValueError, match="strictly increasing"):
        GroupSpec.binned("age", [0, 0, 1])


def test_intersection_row_major_ids_and_names():
    spec = GroupSpec.intersection(
        GroupSpec.categorical("sex", ["F", "M"]), GroupSpec.binned("age", [0, 50, float("inf")], ["<50", ">=50"])
    )
    assert spec.group_names == ["F|<50", "F|>=50", "M|<50", "M|>=50"]
    recs = [{"sex": s, "age": a} for s in ("F", "M") for a in (10, 70)]
    np.testing.assert_array_equal(spec.encode(recs), [0, 1, 2, 3])  # id = sex * 2 + age_bin


def test_round_trip_and_fit():
    spec = GroupSpec.intersection(
        GroupSpec.categorical("sex", ["F", "M"], aliases=SEX),
        GroupSpec.binned("age", [-math.inf, 60, math.inf]),
        unknown="separate",
    )
    again = GroupSpec.from_dict(spec.to_dict())
    assert again == spec and again.group_names == spec.group_names
    recs = [{"sex": "male", "age": 80}, {"sex": "F", "age": None}]
    np.testing.assert_array_equal(again.encode(recs), spec.encode(recs))
    fitted = GroupSpec.categorical("site").fit([{"site": "b"}, {"site": "a"}, {"site": ""}, {"site": "b"}])
    assert fitted.group_names == ["a", "b"]
    with pytest.raises(ValueError, match="fit"):
        _ = GroupSpec.categorical("site").group_names


def test_unknown_policies():
    recs = [{"sex": "F"}, {"sex": "unknown"}, {"sex": None}, {"sex": float("nan")}, {}, {"sex": "M"}]
    with pytest.raises(ValueError) as e:
        GroupSpec.categorical("sex", ["F", "M"]).encode(recs)
    msg = str(e.value)
    assert "4 row(s)" in msg and "row 1 (sex='unknown')" in msg and "row 4 (sex='<no key>')" in msg
    ids = GroupSpec.categorical("sex", ["F", "M"], unknown="drop").encode(recs)
    np.testing.assert_array_equal(ids, [0, -1, -1, -1, -1, 1])
    sep = GroupSpec.categorical("sex", ["F", "M"], unknown="separate")
    np.testing.assert_array_equal(sep.encode(recs), [0, 2, 2, 2, 2, 1])
    assert sep.group_names == ["F", "M", "unknown"]
    items, names = GroupSpec.categorical("sex", ["F", "M"], unknown="drop").assign(recs)
    assert [it["group"] for it in items] == [0, 1] and names == ["F", "M"]


def test_unexpected_value_is_an_error_under_every_policy():
    for policy in ("error", "drop", "separate"):
        with pytest.raises(ValueError, match=r"row 12 \(sex='X'\)"):
            GroupSpec.categorical("sex", ["F", "M"], unknown=policy).encode([{"sex": "F"}, {"sex": "X"}], row_offset=11)
    with pytest.raises(ValueError, match="policy"):
        GroupSpec.categorical("sex", ["F"], unknown="ignore")
