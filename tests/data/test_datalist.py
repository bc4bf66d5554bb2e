# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Datalists: CSV/JSON builders, the decathlon layout, validation on load, split stratification."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_fair.data import (
    GroupSpec,
    build_fair_datalist,
    datalist_from_json,
    encode_labels,
    load_case_metadata,
    load_fair_datalist,
    stratified_split,
)
from monai_fair.data.builder import datalist_from_table
from monai_fair.data.datalist import SPLIT_KEYS


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _spec(**kw):
    return GroupSpec.intersection(
        GroupSpec.categorical("sex", ["F", "M"]), GroupSpec.binned("age", [0, 50, 200], ["<50", ">=50"]), **kw
    )


def test_csv_to_datalist_round_trip(tmp_path):
    rows = [[f"img/{i}.png", ["benign", "malignant"][i % 2], "FM"[i % 3 == 0], 20 + 7 * i] for i in range(12)]
    csv_path = _write_csv(tmp_path / "meta.csv", ["file", "dx", "sex", "age"], rows)
    out = datalist_from_table(
        csv_path,
        tmp_path / "out" / "datalist.json",
        image_col="file",
        label_col="dx",
        group_spec=_spec(),
        check_images=False,
        positive_label="malignant",
        split_fractions=(1.0, 0.0, 0.0),
        seed=1,
    )
    data = json.loads(out.read_text())
    assert data["group_names"] == ["F|<50", "F|>=50", "M|<50", "M|>=50"]
    assert data["label_names"] == ["benign", "malignant"]
    assert GroupSpec.from_dict(data["group_spec"]) == _spec()
    items = [it for k in ("training", "validation", "test") for it in data[k]]
    assert len(items) == 12 and all(set(it) == {"case_id", "image", "label", "group"} for it in items)
    by_img = {it["image"]: it for it in items}
    it = by_img["../img/3.png"]  # relative to the datalist folder
    assert it["label"] == 1 and it["group"] == 2 and it["case_id"] == "3"
    assert data["metadata"]["3"] == {"sex": "M", "age": 41.0}  # raw attributes live in the metadata block
    loaded, names = load_fair_datalist(out, "training")
    assert names == data["group_names"]
    assert all(Path(x["image"]).is_absolute() and Path(x["image"]).parent == tmp_path / "img" for x in loaded)
    assert load_case_metadata(out)["3"]["age"] == 41.0
    # MONAI reads the same file
    assert len(load_decathlon_datalist(str(out), False, "training")) == len(loaded)


def test_text_labels_are_never_ordered_alphabetically(tmp_path):
    rows = [[f"{i}.png", ["abnormal", "normal"][i % 2], "FM"[i % 2]] for i in range(6)]
    csv_path = _write_csv(tmp_path / "m.csv", ["file", "finding", "sex"], rows)
    kw = dict(check_images=False, image_col="file", label_col="finding", group_spec=GroupSpec.categorical("sex"))
    with pytest.raises(ValueError, match=r"'abnormal' x3, 'normal' x3.*--positive-label") as e:
        datalist_from_table(csv_path, tmp_path / "d.json", split_fractions=(1.0, 0.0, 0.0), **kw)
    assert "m.csv" in str(e.value) and not (tmp_path / "d.json").exists()
    out = datalist_from_table(
        csv_path, tmp_path / "d.json", positive_label="abnormal", split_fractions=(1.0, 0.0, 0.0), **kw
    )
    data = json.loads(out.read_text())
    assert data["label_names"] == ["normal", "abnormal"]
    assert {it["case_id"]: it["label"] for it in data["training"]} == {str(i): int(i % 2 == 0) for i in range(6)}
    out = datalist_from_table(
        csv_path, tmp_path / "o.json", label_order=["normal", "abnormal"], split_fractions=(1.0, 0.0, 0.0), **kw
    )
    assert json.loads(out.read_text())["label_names"] == ["normal", "abnormal"]
    with pytest.raises(ValueError, match=r"positive label 'yes' is not among the labels \['abnormal', 'normal'\]"):
        datalist_from_table(csv_path, tmp_path / "x.json", positive_label="yes", **kw)


def test_encode_labels():
    assert encode_labels(["1", 0, 1.0, "0"]) == ([1, 0, 1, 0], None)
    assert encode_labels(["yes", "no", "maybe"], positive_label="yes") == ([1, 0, 0], ["not yes", "yes"])
    assert encode_labels(["b", "a"], label_order=["b", "a"]) == ([0, 1], ["b", "a"])
    with pytest.raises(ValueError, match=r"row 1: 'c'"):
        encode_labels(["a", "c"], label_order=["a", "b"])
    with pytest.raises(ValueError, match=r"'-1' x1"):
        encode_labels(["0", "-1"])


def test_pilot_split_reaches_every_split_and_keeps_patients_together(tmp_path):
    # 18 cases of 3 groups, 2 images per patient: plain per-stratum rounding would leave test without a group
    recs = [
        {"image": f"/d/{i}.png", "label": i % 2, "sex": ["F", "M", "O"][(i // 2) % 3], "pid": f"p{i // 2}"}
        for i in range(18)
    ]
    for seed in range(5):
        out = build_fair_datalist(
            recs, tmp_path / f"d{seed}.json", GroupSpec.categorical("sex"), seed=seed, cluster=[r["pid"] for r in recs]
        )
        data = json.loads(out.read_text())
        for k in ("training", "validation", "test"):
            assert {it["group"] for it in data[k]} == {0, 1, 2}, (seed, k)
        split_of = {data["metadata"][it["case_id"]]["cluster"]: k for k in data if k in SPLIT_KEYS for it in data[k]}
        assert len(split_of) == 9  # one split per patient
        for k in SPLIT_KEYS:
            for it in data[k]:
                assert split_of[data["metadata"][it["case_id"]]["cluster"]] == k


def test_csv_errors_name_row_and_value(tmp_path):
    csv_path = _write_csv(
        tmp_path / "m.csv",
        ["file", "y", "sex", "age"],
        [["a.png", 0, "F", 30], ["b.png", 1, "X", 30], ["c.png", 1, "M", ""]],
    )
    with pytest.raises(ValueError, match=r"row 3 \(sex='X'\)"):  # CSV line 3
        datalist_from_table(
            csv_path, tmp_path / "d.json", image_col="file", label_col="y", check_images=False, group_spec=_spec()
        )
    with pytest.raises(KeyError, match="gender"):
        datalist_from_table(
            csv_path,
            tmp_path / "d.json",
            image_col="file",
            label_col="y",
            group_spec=GroupSpec.categorical("gender", ["F", "M"]),
            check_images=False,
        )
    ok = _write_csv(
        tmp_path / "ok.csv",
        ["file", "y", "sex", "age"],
        [["a.png", 0, "F", 30], ["b.png", 1, "M", ""], ["c.png", 1, "M", 70]],
    )
    with pytest.raises(ValueError, match=r"row 3 \(age=''\)"):
        datalist_from_table(
            ok, tmp_path / "d.json", image_col="file", label_col="y", check_images=False, group_spec=_spec()
        )
    out = datalist_from_table(
        ok,
        tmp_path / "d.json",
        image_col="file",
        label_col="y",
        group_spec=_spec(unknown="drop"),
        split_fractions=(1.0, 0.0, 0.0),
        check_images=False,
    )
    data = json.loads(out.read_text())
    assert len(data["training"]) == 2 and data["dropped_unknown_attribute"] == 1
    out = datalist_from_table(
        ok,
        tmp_path / "d.json",
        image_col="file",
        label_col="y",
        group_spec=_spec(unknown="separate"),
        split_fractions=(1.0, 0.0, 0.0),
        check_images=False,
    )
    data = json.loads(out.read_text())
    assert data["group_names"][-1] == "unknown" and sorted(it["group"] for it in data["training"]) == [0, 3, 4]


def test_split_column_and_label_map(tmp_path):
    rows = [
        [f"{i}.png", ["neg", "pos"][i % 2], "FM"[(i // 2) % 2], ["train", "val", "test"][i // 4 % 3]] for i in range(12)
    ]
    csv_path = _write_csv(tmp_path / "m.csv", ["file", "y", "sex", "fold"], rows)
    kw = dict(
        image_col="file",
        label_col="y",
        check_images=False,
        group_spec=GroupSpec.categorical("sex", ["F", "M"]),
        split_col="fold",
    )
    out = datalist_from_table(csv_path, tmp_path / "d.json", label_map={"neg": 0, "pos": 1}, **kw)
    data = json.loads(out.read_text())
    assert [len(data[k]) for k in ("training", "validation", "test")] == [4, 4, 4]
    assert [it["label"] for it in data["validation"]] == [0, 1, 0, 1] and data["label_names"] == ["neg", "pos"]
    # a given split lacking a group is refused, naming every offender
    bad = _write_csv(
        tmp_path / "b.csv",
        ["file", "y", "sex", "fold"],
        [r[:3] + [["train", "val", "test"][i % 3]] for i, r in enumerate(rows[:3])],
    )
    with pytest.raises(
        ValueError, match=r"b.csv: split 'training' has no case of group\(s\) \['M'\]; split 'validation'"
    ):
        datalist_from_table(bad, tmp_path / "e.json", label_map={"neg": 0, "pos": 1}, **kw)
    assert not (tmp_path / "e.json").exists()


def test_json_sources(tmp_path):
    recs = [{"image": f"i{i}.nii.gz", "label": f"m{i}.nii.gz", "sex": "FM"[i % 2]} for i in range(10)]
    (tmp_path / "list.json").write_text(json.dumps(recs))
    out = datalist_from_json(
        tmp_path / "list.json", tmp_path / "o" / "d.json", label_is_path=True, group_spec=GroupSpec.categorical("sex")
    )
    items, names = load_fair_datalist(out, "training")
    assert names == ["F", "M"] and items[0]["label"].startswith(str(tmp_path))
    dec = {"training": recs[:6], "test": recs[6:]}
    (tmp_path / "dec.json").write_text(json.dumps(dec))
    out = datalist_from_json(
        tmp_path / "dec.json",
        tmp_path / "d2.json",
        label_is_path=True,
        group_spec=GroupSpec.categorical("sex", ["F", "M"]),
    )
    data = json.loads(out.read_text())
    # training/test given, no validation: validation is carved out of training (stratified, every group kept)
    assert [len(data[k]) for k in ("training", "validation", "test")] == [4, 2, 4]
    assert data["validation_from_training"] == pytest.approx(0.15 / 0.85)
    assert {it["group"] for it in data["validation"]} == {0, 1}


def test_load_validates_groups(tmp_path):
    base = {"training": [{"image": "a.nii", "label": 1, "group": 0}], "group_names": ["F", "M"]}
    p = tmp_path / "d.json"
    cases = [(2, "outside 0..1"), ("1", "not an integer"), (None, "not an integer"), (1.5, "not an integer")]
    for bad, pattern in cases:
        data = json.loads(json.dumps(base))
        data["training"][0]["group"] = bad
        p.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=pattern):
            load_fair_datalist(p)
    data = json.loads(json.dumps(base))
    del data["training"][0]["group"]
    p.write_text(json.dumps(data))
    with pytest.raises(KeyError, match=r"training\[0\] has no 'group'"):
        load_fair_datalist(p)
    p.write_text(json.dumps({"training": []}))
    with pytest.raises(ValueError, match="group_names"):
        load_fair_datalist(p)
    p.write_text(json.dumps(base))
    with pytest.raises(KeyError, match="no split 'test'"):
        load_fair_datalist(p, "test")
    items, _ = load_fair_datalist(p)
    assert items[0]["label"] == 1 and items[0]["image"] == str(tmp_path / "a.nii")
    with pytest.raises(FileNotFoundError, match="a.nii"):
        load_fair_datalist(p, check_files=True)


def test_stratified_split_counts():
    strata = np.array(["a"] * 20 + ["b"] * 7)
    split = stratified_split(strata, (0.5, 0.25, 0.25), seed=0)
    assert np.bincount(split[:20], minlength=3).tolist() == [10, 5, 5]
    assert np.bincount(split[20:], minlength=3).tolist() == [4, 1, 2]  # round(3.5)=4, round(5.25)=5
    np.testing.assert_array_equal(split, stratified_split(strata, (0.5, 0.25, 0.25), seed=0))
    assert not np.array_equal(split, stratified_split(strata, (0.5, 0.25, 0.25), seed=1))
