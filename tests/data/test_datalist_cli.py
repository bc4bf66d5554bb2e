# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair datalist``: from a table or DICOM headers; every offender listed; CLI start-up time."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pydicom
import pytest

from monai_fair.__main__ import main
from monai_fair.data import load_fair_datalist
from tests.data.fixtures import truncate, write_dicom_cases, write_jpeg_cases

JPEG_ARGS = ["--image-col", "file", "--label-col", "finding", "--positive-label", "yes", "--patient-col", "patient_id"]


def test_table_with_empty_ages_and_unknown_sex(tmp_path, capsys):
    table = write_jpeg_cases(tmp_path)
    out = tmp_path / "datalist.json"
    assert (
        main(["datalist", str(table), *JPEG_ARGS, "--attributes", "sex", "--out", str(out), "--min-group-size", "3"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "unknown" in printed and "<3" in printed and "suppressed" in printed
    data = json.loads(out.read_text())
    assert data["group_names"] == ["F", "M", "unknown"]  # "Male" and "male" are one group
    assert data["label_names"] == ["no", "yes"] and data["task"] == "classification"
    for split in ("training", "validation", "test"):
        assert {it["group"] for it in data[split]} == {0, 1, 2}
        for it in data[split]:
            assert set(it) == {"case_id", "image", "label", "group"}
            i = int(it["case_id"][-5:])
            assert it["label"] == i % 2 and it["group"] == [0, 1, 1, 2][(i // 2) % 4]
    assert data["metadata"]["ISIC_00003"] == {"sex": "Male", "patient_id": "P001"}
    # ages: empty cells become null in the metadata, never in an item
    out2 = tmp_path / "age.json"
    args = ["datalist", str(table), *JPEG_ARGS, "--attributes", "age", "--age-bins", "0,50", "--out", str(out2)]
    assert main(args) == 0
    data = json.loads(out2.read_text())
    assert data["group_names"] == ["0-50", ">=50", "unknown"] and data["metadata"]["ISIC_00002"]["age"] is None
    items, _ = load_fair_datalist(out2, "training")
    assert all(set(it) == {"case_id", "image", "label", "group"} for it in items)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_table_errors_list_every_offender(tmp_path, capsys):
    table = write_jpeg_cases(tmp_path)
    out = tmp_path / "d.json"
    (tmp_path / "images/ISIC_00004.jpg").unlink()
    truncate(tmp_path / "images/ISIC_00007.jpg")
    assert main(["datalist", str(table), *JPEG_ARGS, "--attributes", "sex", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 image file(s) missing or unreadable" in err and "Traceback" not in err
    assert "row 6 (file)" in err and "ISIC_00004.jpg: file not found" in err
    assert "row 9 (file)" in err and "ISIC_00007.jpg: truncated JPEG" in err
    assert not out.exists()
    table = write_jpeg_cases(tmp_path)  # repaired
    bad = [a for a in JPEG_ARGS if a not in ("--positive-label", "yes")]
    assert main(["datalist", str(table), *bad, "--attributes", "sex", "--out", str(out)]) == 2
    assert "'no' x18, 'yes' x18" in capsys.readouterr().err and not out.exists()
    assert main(["datalist", str(table), *JPEG_ARGS, "--attributes", "gender", "--out", str(out)]) == 2
    assert "column(s) ['gender'] not in the header" in capsys.readouterr().err
    rows = _rows(table)
    small = tmp_path / "pilot.csv"
    with small.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:5])
    assert main(["datalist", str(small), *JPEG_ARGS, "--attributes", "sex", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pilot.csv: split 'validation'" in err and "'test'" in err and not out.exists()


def test_dicom_headers_are_the_only_attribute_source(tmp_path, capsys):
    labels = write_dicom_cases(tmp_path)
    rows = _rows(labels)
    with labels.open("w", newline="") as f:  # a 'sex' column in the labels file must be ignored
        csv.writer(f).writerows([rows[0] + ["sex"]] + [r + ["X"] for r in rows[1:]])
    out = tmp_path / "d.json"
    args = ["datalist", "--dicom-dir", str(tmp_path / "dicom"), "--labels", str(labels), "--image-col", "file"]
    args += ["--label-col", "finding", "--positive-label", "abnormal", "--out", str(out)]
    assert main([*args, "--attributes", "sex"]) == 0
    data = json.loads(out.read_text())
    assert data["group_names"] == ["F", "M"] and data["label_names"] == ["normal", "abnormal"]
    assert data["metadata"]["img_002"] == {"sex": "M", "patient_id": "PAT002"}
    assert main([*args, "--attributes", "age,manufacturer", "--age-bins", "0,50", "--out", str(out)]) == 0
    meta = json.loads(out.read_text())["metadata"]
    assert meta["img_000"]["age"] == pytest.approx(60 + 152 / 366)  # from birth 1960-01-01, study 2020-06-01
    assert meta["img_001"]["age"] == 31.0 and meta["img_001"]["manufacturer"] == "Globex"
    # files named by SOPInstanceUID
    uid_rows = [["uid", "finding"]]
    for r in rows[1:]:
        uid_rows.append([str(pydicom.dcmread(tmp_path / "dicom" / r[0]).SOPInstanceUID), r[1]])
    by_uid = tmp_path / "by_uid.csv"
    with by_uid.open("w", newline="") as f:
        csv.writer(f).writerows(uid_rows)
    args_uid = [a if a != str(labels) else str(by_uid) for a in args]
    args_uid[args_uid.index("file")] = "uid"
    assert main([*args_uid, "--attributes", "sex", "--out", str(tmp_path / "u.json")]) == 0
    assert len(json.loads((tmp_path / "u.json").read_text())["metadata"]) == 36
    # every unreadable or unknown file at once
    truncate(tmp_path / "dicom/site1/img_003.dcm", 0.3)
    with labels.open("a", newline="") as f:
        csv.writer(f).writerow(["site0/nope.dcm", "normal", "X"])
    assert main([*args, "--attributes", "sex"]) == 2
    err = capsys.readouterr().err
    assert "img_003.dcm" in err and "'site0/nope.dcm' is neither a file" in err


@pytest.mark.parametrize(
    "command",
    [[], ["datalist"], ["check"], ["synth"], ["adapt"], ["adapt", "chexpert"], ["report"], ["compare"], ["trial"]],
)
def test_help_is_fast_and_imports_nothing_heavy(command):
    """Every subcommand's --help imports neither torch, MONAI nor numpy: its module's imports run after parsing."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "monai_fair", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "usage" in proc.stdout.lower()
    if not command:
        assert "datalist" in proc.stdout and "check" in proc.stdout
    rows = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line]
    rows = [r for r in rows if r[1].strip().isdigit()]  # skip the header line
    modules = [r[2].strip() for r in rows]
    assert modules and not [m for m in modules if m.split(".")[0] in ("torch", "monai", "numpy", "ignite")]
    top = [int(r[1]) for r in rows if not r[2].startswith("  ")]  # top-level imports (nested ones are indented)
    assert sum(top) < 1_000_000  # every import of the --help path together: < 1 s
