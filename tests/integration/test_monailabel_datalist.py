# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Joining sensitive attributes from a MONAI Label datastore into the training datalist (no MONAI Label needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monai_fair.apps.monailabel.datalist import (
    fetch_group_datalist,
    load_attribute_csv,
    parse_group_spec,
    write_fair_datalist,
)
from monai_fair.data import GroupSpec


class FakeDatastore:
    """The four datastore methods the join uses, over an in-memory table."""

    def __init__(self, infos: dict[str, dict], unlabeled: tuple[str, ...] = ()) -> None:
        self.infos = infos
        self.unlabeled = set(unlabeled)

    def get_labeled_images(self):
        return [k for k in self.infos if k not in self.unlabeled]

    def get_image_uri(self, image_id):
        return f"/store/{image_id}.nii.gz"

    def get_label_uri(self, image_id, tag):
        return f"/store/labels/{tag}/{image_id}.nii.gz"

    def get_image_info(self, image_id):
        return dict(self.infos[image_id])


def test_import_without_monailabel():
    code = "import sys, monai_fair, monai_fair.apps.monailabel; assert 'monailabel' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_groups_from_image_info_and_csv(tmp_path):
    ds = FakeDatastore({"b": {"sex": "M"}, "a": {"sex": "F"}, "c": {"sex": "female"}, "d": {"sex": "F"}}, ("d",))
    csv = tmp_path / "attrs.csv"
    csv.write_text("image_id,sex\nc,M\n")
    spec = GroupSpec.categorical("sex", ["F", "M"])
    items, names = fetch_group_datalist(ds, spec, attributes=load_attribute_csv(csv))
    assert names == ["F", "M"]
    # sorted by image id, unlabeled 'd' left out, CSV value 'M' overrides the info's 'female'
    assert [(i["image_id"], i["group"]) for i in items] == [("a", 0), ("b", 1), ("c", 1)]
    assert items[0]["image"] == "/store/a.nii.gz" and items[0]["label"] == "/store/labels/final/a.nii.gz"
    assert all("sex" not in i for i in items)  # raw attributes are not copied into the datalist


def test_integer_group_ids_and_errors():
    ds = FakeDatastore({"a": {"group": 1}, "b": {"group": "0"}})
    items, names = fetch_group_datalist(ds, None, group_names=["x", "y"])
    assert [i["group"] for i in items] == [1, 0] and names == ["x", "y"]
    with pytest.raises(ValueError, match="outside 0..0"):
        fetch_group_datalist(ds, None, group_names=["x"])
    with pytest.raises(ValueError, match="fair_group_names"):
        fetch_group_datalist(ds, None)
    with pytest.raises(ValueError, match="image 'b' has no sensitive attribute"):
        fetch_group_datalist(FakeDatastore({"a": {"sex": "F"}, "b": {}}), GroupSpec.categorical("sex", ["F", "M"]))
    with pytest.raises(ValueError, match="no labeled image"):
        fetch_group_datalist(FakeDatastore({"a": {"sex": "F"}}, ("a",)), GroupSpec.categorical("sex"))
    # an unknown category is an error naming the value; the 'separate' policy puts missing values in 'unknown'
    with pytest.raises(ValueError, match="'X'"):
        fetch_group_datalist(FakeDatastore({"a": {"sex": "X"}}), GroupSpec.categorical("sex", ["F", "M"]))
    spec = GroupSpec.categorical("sex", ["F", "M"], unknown="separate")
    items, names = fetch_group_datalist(FakeDatastore({"a": {"sex": "F"}, "b": {}}), spec)
    assert [i["group"] for i in items] == [0, 2] and names == ["F", "M", "unknown"]


def test_parse_group_spec_and_write(tmp_path):
    spec = GroupSpec.categorical("sex", ["F", "M"])
    assert parse_group_spec(json.dumps(spec.to_dict())) == spec
    assert parse_group_spec(None, "sex", "F, M") == spec
    assert parse_group_spec(None) is None
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_group_spec("{sex")
    with pytest.raises(KeyError, match="image_id"):
        (tmp_path / "x.csv").write_text("id,sex\na,F\n")
        load_attribute_csv(tmp_path / "x.csv")
    (tmp_path / "d.csv").write_text("image_id,sex\na,F\na,M\n")
    with pytest.raises(ValueError, match="twice"):
        load_attribute_csv(tmp_path / "d.csv")
    from monai_fair.data import load_fair_datalist

    img = tmp_path / "a.nii.gz"
    img.write_bytes(b"")
    path = write_fair_datalist(
        tmp_path / "dl" / "datalist.json", [{"image": str(img), "label": str(img), "group": 1}], [], ["F", "M"], spec
    )
    items, names = load_fair_datalist(path, split="training")
    assert names == ["F", "M"] and items[0]["group"] == 1 and items[0]["image"] == str(img)
