# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Public-dataset adapters on small fixtures written in each dataset's own format (columns and encodings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monai_fair.__main__ import main
from monai_fair.data import load_fair_datalist
from monai_fair.data.adapters import (
    CHEXPERT_FINDINGS,
    chexpert_datalist,
    fairseg_datalist,
    fitzpatrick17k_datalist,
    ham10000_datalist,
    isic2019_datalist,
    papila_datalist,
)


def _csv(path: Path, rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"\xff\xd8\xff")  # JPEG magic; adapters never decode images


ALL_TRAIN = (1.0, 0.0, 0.0)  # tiny fixtures: every case in training, asked for explicitly


def _all(path):
    """The datalist and its items, each merged with its raw attributes from the metadata block."""
    data = json.loads(Path(path).read_text())
    meta = data.get("metadata", {})
    for k in ("training", "validation", "test"):
        for it in data[k]:
            assert set(it) <= {"case_id", "image", "label", "group"}, it  # no raw attribute in an item
    return data, [{**it, **meta.get(it["case_id"], {})} for k in ("training", "validation", "test") for it in data[k]]


# ------------------------------------------------------------------------------------------------ HAM10000
HAM = [
    ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"],
    ["HAM_0000118", "ISIC_0027419", "bkl", "histo", "80.0", "male", "scalp"],
    ["HAM_0000118", "ISIC_0025030", "bkl", "histo", "80.0", "male", "scalp"],
    ["HAM_0002730", "ISIC_0026769", "mel", "histo", "", "female", "back"],
    ["HAM_0001466", "ISIC_0031633", "nv", "follow_up", "45.0", "unknown", "ear"],
    ["HAM_0002761", "ISIC_0029176", "bcc", "histo", "60.0", "female", "face"],
]


def _ham(tmp_path):
    meta = _csv(tmp_path / "HAM10000_metadata.csv", HAM)
    _touch(tmp_path / "HAM10000_images_part_1", ["ISIC_0027419.jpg", "ISIC_0025030.jpg", "ISIC_0026769.jpg"])
    _touch(tmp_path / "HAM10000_images_part_2", ["ISIC_0031633.jpg", "ISIC_0029176.jpg"])
    return meta, [tmp_path / "HAM10000_images_part_1", tmp_path / "HAM10000_images_part_2"]


def test_ham10000(tmp_path):
    meta, folders = _ham(tmp_path)
    with pytest.raises(ValueError, match=r"row 5 \(sex='unknown'\)"):
        ham10000_datalist(meta, folders, tmp_path / "d.json", unknown="error", split_fractions=ALL_TRAIN)
    # the default is a stated policy, never a traceback on the dataset's own 'unknown'
    default = json.loads(ham10000_datalist(meta, folders, tmp_path / "d.json", split_fractions=ALL_TRAIN).read_text())
    assert default["group_names"] == ["F", "M", "unknown"] and default["group_spec"]["unknown"] == "separate"
    out = ham10000_datalist(meta, folders, tmp_path / "d.json", unknown="separate", split_fractions=ALL_TRAIN)
    data, items = _all(out)
    assert data["group_names"] == ["F", "M", "unknown"] and data["label_names"][4] == "mel"
    by_id = {it["image_id"]: it for it in items}
    assert by_id["ISIC_0026769"]["label"] == 4 and by_id["ISIC_0026769"]["group"] == 0
    assert by_id["ISIC_0031633"]["group"] == 2 and by_id["ISIC_0026769"]["age"] is None
    assert data["metadata"]["ISIC_0027419"]["cluster"] == data["metadata"]["ISIC_0025030"]["cluster"] == "HAM_0000118"
    out = ham10000_datalist(
        meta,
        folders,
        tmp_path / "b.json",
        attribute="age",
        label_mode="binary",
        unknown="drop",
        split_fractions=ALL_TRAIN,
    )
    data, items = _all(out)
    assert len(items) == 4 and data["group_names"] == ["0-60", ">=60"]
    assert data["label_names"] == ["benign", "malignant"]
    assert {it["image_id"]: (it["label"], it["group"]) for it in items}["ISIC_0029176"] == (1, 1)
    # the files resolve from the datalist
    loaded, _ = load_fair_datalist(out, "training", check_files=True)
    assert all(Path(it["image"]).is_file() for it in loaded)
    # the CLI front end
    assert (
        main(
            [
                "adapt",
                "ham10000",
                "--metadata",
                str(meta),
                "--images",
                ",".join(map(str, folders)),
                "--out",
                str(tmp_path / "cli.json"),
                "--unknown",
                "drop",
                "--split-fractions",
                "1,0,0",
            ]
        )
        == 0
    )
    assert len(_all(tmp_path / "cli.json")[1]) == 4


def test_ham10000_bad_dx_and_missing_image(tmp_path):
    meta, folders = _ham(tmp_path)
    rows = [r[:] for r in HAM]
    rows[2][2] = "melanoma"
    bad = _csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ValueError, match="row 3: unknown dx 'melanoma'"):
        ham10000_datalist(bad, folders, tmp_path / "d.json", unknown="drop", split_fractions=ALL_TRAIN)
    with pytest.raises(FileNotFoundError, match="ISIC_0031633"):
        ham10000_datalist(meta, folders[:1], tmp_path / "d.json", unknown="drop", split_fractions=ALL_TRAIN)


# ------------------------------------------------------------------------------------------------ Fitzpatrick17k
FITZ_HEADER = [
    "md5hash",
    "fitzpatrick_scale",
    "fitzpatrick_centaur",
    "label",
    "nine_partition_label",
    "three_partition_label",
    "qc",
    "url",
    "url_alphanum",
]


def _fitz(tmp_path):
    rows = [FITZ_HEADER]
    scales = [1, 2, 3, 4, 5, 6, -1, 3]
    centaur = [1, 3, 3, 5, 5, 6, 2, -1]
    parts = ["benign", "malignant", "non-neoplastic", "benign", "malignant", "non-neoplastic", "benign", "benign"]
    for i, (s, c, p) in enumerate(zip(scales, centaur, parts)):
        rows.append([f"{i:032x}", s, c, "psoriasis", "inflammatory", p, "", f"https://x/{i}.jpg", f"x{i}jpg"])
    _touch(tmp_path / "images", [f"{i:032x}.jpg" for i in range(8)])
    return _csv(tmp_path / "fitzpatrick17k.csv", rows)


def test_fitzpatrick17k_unknown_is_explicit(tmp_path):
    meta = _fitz(tmp_path)
    with pytest.raises(ValueError, match=r"row 8 \(fitzpatrick=None\)"):
        fitzpatrick17k_datalist(
            meta, tmp_path / "images", tmp_path / "d.json", unknown="error", split_fractions=ALL_TRAIN
        )
    data, items = _all(
        fitzpatrick17k_datalist(
            meta, tmp_path / "images", tmp_path / "d.json", unknown="drop", split_fractions=ALL_TRAIN
        )
    )
    assert data["group_names"] == ["light", "dark"] and len(items) == 7
    assert {it["md5hash"][-1]: it["group"] for it in items} == {"0": 0, "1": 0, "2": 0, "3": 1, "4": 1, "5": 1, "7": 0}
    assert data["label_names"] == ["benign", "malignant", "non-neoplastic"]
    data, items = _all(
        fitzpatrick17k_datalist(
            meta, tmp_path / "images", tmp_path / "s.json", unknown="separate", split_fractions=ALL_TRAIN
        )
    )
    assert data["group_names"] == ["light", "dark", "unknown"]
    assert [it["group"] for it in items if it["md5hash"].endswith("6")] == [2]  # -1 is NOT merged into dark
    data, items = _all(
        fitzpatrick17k_datalist(
            meta,
            tmp_path / "images",
            tmp_path / "c.json",
            unknown="drop",
            grouping="six",
            scale_col="fitzpatrick_centaur",
            split_fractions=ALL_TRAIN,
        )
    )
    assert data["group_names"] == ["1", "2", "3", "4", "5", "6"]
    assert {it["md5hash"][-1]: it["group"] for it in items}["6"] == 1  # centaur says type 2


# ------------------------------------------------------------------------------------------------ ISIC 2019
def test_isic2019(tmp_path):
    meta = _csv(
        tmp_path / "ISIC_2019_Training_Metadata.csv",
        [
            ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"],
            ["ISIC_0000000", "55.0", "anterior torso", "", "female"],
            ["ISIC_0000001", "30.0", "anterior torso", "", "female"],
            ["ISIC_0000002", "60.0", "upper extremity", "BCN_0000001", "male"],
            ["ISIC_0000003", "", "", "BCN_0000001", "male"],
        ],
    )
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    onehot = {0: "NV", 1: "NV", 2: "MEL", 3: "SCC"}
    gt_rows = [["image"] + classes] + [
        [f"ISIC_000000{i}"] + ["1.0" if c == onehot[i] else "0.0" for c in classes] for i in range(4)
    ]
    gt = _csv(tmp_path / "ISIC_2019_Training_GroundTruth.csv", gt_rows)
    _touch(tmp_path / "img", [f"ISIC_000000{i}.jpg" for i in range(4)])
    data, items = _all(isic2019_datalist(meta, gt, tmp_path / "img", tmp_path / "d.json", split_fractions=ALL_TRAIN))
    assert data["label_names"] == classes[:-1] and data["group_names"] == ["F", "M"]
    by = {it["image_id"]: it for it in items}
    assert (by["ISIC_0000002"]["label"], by["ISIC_0000003"]["label"], by["ISIC_0000000"]["label"]) == (0, 7, 1)
    assert by["ISIC_0000002"]["group"] == 1 and by["ISIC_0000000"]["age"] == 55.0
    with pytest.raises(ValueError, match=r"row 5 \(age=None\)"):
        isic2019_datalist(
            meta,
            gt,
            tmp_path / "img",
            tmp_path / "d.json",
            attribute="sex_age",
            unknown="error",
            split_fractions=ALL_TRAIN,
        )
    gt_rows[2][1] = "1.0"  # two classes for ISIC_0000001
    bad = _csv(tmp_path / "bad_gt.csv", gt_rows)
    with pytest.raises(ValueError, match=r"row\(s\) \[3\] are not one-hot"):
        isic2019_datalist(meta, bad, tmp_path / "img", tmp_path / "d.json", split_fractions=ALL_TRAIN)


# ------------------------------------------------------------------------------------------------ CheXpert
def _chexpert(tmp_path, name, patients, sexes, values):
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + list(CHEXPERT_FINDINGS)
    rows = [header]
    split = "train" if name == "train.csv" else "valid"
    for k, (p, sex, vals) in enumerate(zip(patients, sexes, values)):
        view = "frontal" if k % 3 else "lateral"
        rel = f"CheXpert-v1.0-small/{split}/patient{p:05d}/study1/view{k % 3 + 1}_{view}.jpg"
        _touch((tmp_path / rel).parent, [Path(rel).name])
        row = [rel, sex, 40 + k, view.capitalize(), "AP" if view == "frontal" else ""]
        rows.append(row + [vals.get(f, "") for f in CHEXPERT_FINDINGS])
    return _csv(tmp_path / "CheXpert-v1.0-small" / name, rows)


def test_chexpert(tmp_path):
    pats = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    sexes = ["Male"] * 3 + ["Female"] * 3 + ["Male"] * 3 + ["Female"] * 3
    vals = [
        {"Edema": v, "No Finding": "1.0" if v == "" else ""}
        for v in ["1.0", "-1.0", "0.0", "", "1.0", "-1.0", "1.0", "0.0", "-1.0", "1.0", "1.0", ""]
    ]
    train = _chexpert(tmp_path, "train.csv", pats, sexes, vals)
    valid = _chexpert(tmp_path, "valid.csv", [9, 9, 9], ["Female", "Unknown", "Male"], vals[:3])
    valid2 = _chexpert(tmp_path, "valid2.csv", [9, 9, 9], ["Unknown", "Female", "Male"], [vals[0], vals[2], vals[0]])
    with pytest.raises(ValueError, match=r"valid.csv: .*line 3 \(sex='Unknown'\)"):
        chexpert_datalist(
            train,
            tmp_path,
            tmp_path / "d.json",
            valid_metadata=valid,
            finding="Edema",
            unknown="error",
            split_fractions=ALL_TRAIN,
        )
    out = chexpert_datalist(
        train,
        tmp_path,
        tmp_path / "d.json",
        valid_metadata=valid2,
        finding="Edema",
        uncertain="ignore",
        unknown="drop",
        val_fraction=0.5,
    )
    data, items = _all(out)
    # frontal only: rows 1,2 of every 3; "ignore" drops the uncertain ones (row k=1,5,8 are -1 -> k=1,5,8 frontal)
    frontal = [k for k in range(12) if k % 3]
    kept = [k for k in frontal if vals[k]["Edema"] != "-1.0"]
    assert len(data["training"]) + len(data["validation"]) == len(kept)
    assert len(data["test"]) == 2  # valid2.csv: the two frontal rows (the lateral 'Unknown' row is left out)
    assert data["label_names"] == ["no Edema", "Edema"]  # two names for the two classes of a binary finding
    meta = data["metadata"]
    for it in [{**x, **meta[x["case_id"]]} for x in data["training"] + data["validation"]]:
        k = int(it["age"]) - 40
        assert it["label"] == int(vals[k]["Edema"] == "1.0") and it["view"] == "Frontal"
    patients = {k: {meta[it["case_id"]]["patient_id"] for it in data[k]} for k in ("training", "validation")}
    assert not patients["training"] & patients["validation"]
    out = chexpert_datalist(
        train, tmp_path, tmp_path / "m.json", uncertain="ones", frontal_only=False, split_fractions=ALL_TRAIN
    )
    data, items = _all(out)
    assert len(items) == 12 and data["label_names"] == list(CHEXPERT_FINDINGS)
    by_age = {int(it["age"]) - 40: it["label"] for it in items}
    edema, nofinding = CHEXPERT_FINDINGS.index("Edema"), 0
    assert by_age[1][edema] == 1.0 and by_age[3][edema] == 0.0 and by_age[3][nofinding] == 1.0
    out = chexpert_datalist(train, tmp_path, tmp_path / "z.json", uncertain="zeros", split_fractions=ALL_TRAIN)
    assert {int(it["age"]) - 40: it["label"] for it in _all(out)[1]}[5][edema] == 0.0


# ------------------------------------------------------------------------------------------------ PAPILA
def _papila_rows(ids, ages, genders, dx):
    rows = [
        ["", "", "", "", "Refractive_Defect", "", "", "Phakic/Pseudophakic", "IOP", "", "Pachymetry"],
        ["ID", "Age", "Gender", "Diagnosis", "dioptre_1", "dioptre_2", "astigmatism", "", "Pneumatic", "Perkins", ""],
        ["", "", "", "", "", "", "", "", "", "", ""],
    ]
    for i, a, g, d in zip(ids, ages, genders, dx):
        rows.append([f"#{i:03d}", a, g, d, "-1.5", "-0.5", "90", "0", "15", "14", "540"])
    return rows


def test_papila_csv_exports(tmp_path):
    od = _csv(
        tmp_path / "ClinicalData" / "patient_data_od.csv",
        _papila_rows([2, 4, 5, 7], [39, 71, 55, 60], [0, 1, 1, 0], [0, 1, 2, 0]),
    )
    os_ = _csv(
        tmp_path / "ClinicalData" / "patient_data_os.csv",
        _papila_rows([2, 4, 5, 7], [39, 71, 55, 60], [0, 1, 1, 0], [0, 1, 0, 1]),
    )
    _touch(tmp_path / "FundusImages", [f"RET{i:03d}{e}.jpg" for i in (2, 4, 5, 7) for e in ("OD", "OS")])
    data, items = _all(
        papila_datalist(od, os_, tmp_path / "FundusImages", tmp_path / "d.json", split_fractions=ALL_TRAIN)
    )
    assert len(items) == 7  # the OD suspect of #005 is excluded
    by = {(it["patient_id"], it["eye"]): it for it in items}
    assert by[("#002", "OD")]["sex"] == "M" and by[("#002", "OD")]["group"] == 1
    assert by[("#004", "OS")]["sex"] == "F" and by[("#004", "OS")]["label"] == 1 and by[("#004", "OS")]["age"] == 71
    assert by[("#007", "OS")]["label"] == 1 and by[("#007", "OD")]["label"] == 0
    assert all(by[(p, "OD")]["cluster"] == by[(p, "OS")]["cluster"] == p for p in ("#002", "#004", "#007"))
    data, items = _all(
        papila_datalist(
            od,
            os_,
            tmp_path / "FundusImages",
            tmp_path / "c.json",
            suspect="class",
            attribute="age",
            split_fractions=ALL_TRAIN,
        )
    )
    assert len(items) == 8 and data["label_names"] == ["healthy", "glaucoma", "suspect"]
    assert {(it["patient_id"], it["eye"]): (it["label"], it["group"]) for it in items}[("#005", "OD")] == (2, 0)
    bad = _csv(tmp_path / "bad.csv", _papila_rows([2], [39], [3], [0]))
    with pytest.raises(ValueError, match=r"line 4: Gender '3'"):
        papila_datalist(bad, os_, tmp_path / "FundusImages", tmp_path / "d.json", split_fractions=ALL_TRAIN)


def test_papila_xlsx(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    for row in _papila_rows([2, 4], [39, 71], [0, 1], [0, 1]):
        wb.active.append([int(v) if isinstance(v, int) else (v or None) for v in row])
    wb.save(tmp_path / "patient_data_od.xlsx")
    wb.save(tmp_path / "patient_data_os.xlsx")
    _touch(tmp_path / "img", [f"RET{i:03d}{e}.jpg" for i in (2, 4) for e in ("OD", "OS")])
    _, items = _all(
        papila_datalist(
            tmp_path / "patient_data_od.xlsx",
            tmp_path / "patient_data_os.xlsx",
            tmp_path / "img",
            tmp_path / "d.json",
            split_fractions=ALL_TRAIN,
        )
    )
    assert len(items) == 4


# ------------------------------------------------------------------------------------------------ Harvard-FairSeg
def _npz(path: Path, race: int, gender: int, rng, age=61.5, image_key="slo_fundus", mask_key="disc_cup_mask"):
    image = rng.integers(0, 255, (20, 16)).astype(np.uint8)
    mask = np.zeros((20, 16), np.int8)
    mask[5:15, 4:12] = -1
    mask[8:12, 6:10] = -2
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{image_key: image, mask_key: mask},
        age=np.array(age),
        gender=np.array(gender),
        race=np.array(race),
        ethnicity=np.array(-1),
        language=np.array(0),
        maritalstatus=np.array(3),
    )
    return image, mask


def test_fairseg(tmp_path, monkeypatch):
    # three files cannot cover 3 groups x 3 splits: this test is about parsing, so the coverage check is off
    monkeypatch.setattr("monai_fair.data.records.check_split_coverage", lambda *a, **k: None)
    rng = np.random.default_rng(0)
    img0, mask0 = _npz(tmp_path / "npz" / "Training" / "data_00001.npz", race=0, gender=0, rng=rng)
    _npz(
        tmp_path / "npz" / "Training" / "data_00002.npz",
        race=2,
        gender=1,
        rng=rng,
        age=25000.0,
        image_key="fundus_slo",
        mask_key="disc_cup",
    )
    _npz(tmp_path / "npz" / "Test" / "data_00003.npz", race=1, gender=1, rng=rng)
    out = fairseg_datalist(tmp_path / "npz", tmp_path / "out" / "d.json", split_fractions=ALL_TRAIN)
    data, items = _all(out)
    assert data["group_names"] == ["Asian", "Black", "White"] and [len(data["training"]), len(data["test"])] == [2, 1]
    assert data["label_names"] == ["background", "rim", "cup"]
    first = next(it for it in items if it["npz"].endswith("data_00001.npz"))
    assert first["gender"] == "Female" and first["maritalstatus"] == "Widowed" and first["ethnicity"] is None
    assert next(it for it in items if it["npz"].endswith("00002.npz"))["age"] == pytest.approx(25000 / 365)
    loaded, _ = load_fair_datalist(out, "training", check_files=True)
    import nibabel as nib

    it = next(x for x in loaded if x["case_id"] == first["case_id"])
    np.testing.assert_array_equal(np.asarray(nib.load(it["image"]).dataobj), img0.T)
    np.testing.assert_array_equal(np.asarray(nib.load(it["label"]).dataobj), np.where(mask0 == -2, 2, -mask0).T)
    _, items = _all(
        fairseg_datalist(
            tmp_path / "npz",
            tmp_path / "out" / "e.json",
            attribute="ethnicity",
            mask="cup",
            unknown="separate",
            split_fractions=ALL_TRAIN,
        )
    )
    assert {it["group"] for it in items} == {2}  # all Unknown -> own group
    with pytest.raises(ValueError, match=r"row 0 \(ethnicity=None\)"):
        fairseg_datalist(
            tmp_path / "npz",
            tmp_path / "out" / "f.json",
            attribute="ethnicity",
            unknown="error",
            split_fractions=ALL_TRAIN,
        )
    np.savez(
        tmp_path / "npz" / "Test" / "data_00004.npz", slo_fundus=np.zeros((4, 4)), disc_cup_mask=np.full((4, 4), 5)
    )
    with pytest.raises(ValueError, match=r"data_00004.npz: disc_cup_mask holds values \[5\]"):
        fairseg_datalist(tmp_path / "npz", tmp_path / "out" / "g.json", split_fractions=ALL_TRAIN)


def test_pilot_set_never_silently_all_in_training(tmp_path):
    meta, folders = _ham(tmp_path)
    with pytest.raises(ValueError, match=r"split 'validation' is empty.*split 'test' is empty") as e:
        ham10000_datalist(meta, folders, tmp_path / "d.json", unknown="separate")
    assert "HAM10000_metadata.csv" in str(e.value) and not (tmp_path / "d.json").exists()


# ------------------------------------------------------------------------------------------------ the adapt CLI
def test_adapt_cli_defaults_split_table_age_bins_and_no_traceback(tmp_path, capsys):
    """The datasets' own values (HAM10000 'unknown', CheXpert 'Unknown') never end in a traceback by default; the
    command prints the split x group x label table; --age-bins reaches the spec; bad input is one message."""
    meta, folders = _ham(tmp_path)
    args = ["adapt", "ham10000", "--metadata", str(meta), "--images", ",".join(map(str, folders))]
    out = tmp_path / "ham.json"
    assert main([*args, "--out", str(out), "--split-fractions", "1,0,0", "--min-group-size", "1"]) == 0
    printed = capsys.readouterr().out
    assert "split" in printed and "training" in printed and "unknown" in printed
    assert _all(out)[0]["group_names"] == ["F", "M", "unknown"]
    cmd = [*args, "--out", str(out), "--split-fractions", "1,0,0", "--attribute", "age", "--age-bins", "0,50,70"]
    assert main(cmd) == 0
    assert _all(out)[0]["group_names"] == ["0-50", "50-70", ">=70", "unknown"]
    capsys.readouterr()
    assert main([*args, "--out", str(out), "--unknown", "error", "--split-fractions", "1,0,0"]) == 2
    err = capsys.readouterr().err
    assert "sex='unknown'" in err and "Traceback" not in err
    pats, sexes = [1, 1, 1, 2, 2, 2], ["Male"] * 3 + ["Unknown"] * 3
    train = _chexpert(tmp_path, "train.csv", pats, sexes, [{"Edema": v} for v in ["1.0", "", "-1.0"] * 2])
    cx = ["adapt", "chexpert", "--metadata", str(train), "--root", str(tmp_path), "--finding", "Edema"]
    assert main([*cx, "--out", str(tmp_path / "cx.json"), "--split-fractions", "1,0,0"]) == 0
    data = _all(tmp_path / "cx.json")[0]
    assert data["label_names"] == ["no Edema", "Edema"] and data["group_names"] == ["F", "M", "unknown"]


@pytest.mark.parametrize(
    "dataset, words",
    [
        ("chexpert", ["-1 -> 1", "Blank (not mentioned) -> 0", "'no F' and 'F'", "default separate"]),
        ("ham10000", ["malignant (akiec, bcc, mel) = 1", "default separate"]),
    ],
)
def test_adapt_help_states_the_label_policy(dataset, words, capsys):
    with pytest.raises(SystemExit):
        main(["adapt", dataset, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in text, (w, text)
