# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The datalist's explicit policies on real hospital exports: duplicate SOPInstanceUIDs (both files named),
unlabelled files in --dicom-dir (counted), a patient across given splits (an error unless allowed), DICOM sex codes
U/O and placeholder birth dates (unknown, with the reason printed), empty intersection cells (not listed) and a cap on
the number of groups (with a message)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest

from monai_fair.__main__ import main
from monai_fair.data import GroupSpec
from monai_fair.data.dicom import write_dicom_image
from tests.data.fixtures import write_dicom_cases, write_jpeg_cases

JPEG_ARGS = ["--image-col", "file", "--label-col", "finding", "--positive-label", "yes", "--patient-col", "patient_id"]


def _write(path, rows):
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _dicom_args(tmp_path, labels, *more):
    args = ["datalist", "--dicom-dir", str(tmp_path / "dicom"), "--labels", str(labels), "--image-col", "file"]
    return [*args, "--label-col", "finding", "--positive-label", "abnormal", "--out", str(tmp_path / "d.json"), *more]


def test_duplicate_uids_and_unlabelled_files(tmp_path, capsys):
    labels = write_dicom_cases(tmp_path)
    rows = _rows(labels)
    # a re-export of img_000 in another transfer syntax: same SOPInstanceUID, another file
    src = tmp_path / "dicom" / rows[1][0]
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    copy = tmp_path / "dicom" / "reexport" / "img_000_implicit.dcm"
    copy.parent.mkdir()
    ds.save_as(str(copy), enforce_file_format=True) if pydicom.__version__[0] == "3" else ds.save_as(str(copy))
    uid = str(ds.SOPInstanceUID)
    # labels by UID: the UID is ambiguous, both files are named
    by_uid = _write(tmp_path / "uid.csv", [["file", "finding"], [uid, "normal"], *rows[2:]])
    assert main(_dicom_args(tmp_path, by_uid, "--attributes", "sex")) == 2
    err = capsys.readouterr().err
    assert f"SOPInstanceUID {uid} is held by 2 files" in err and "img_000.dcm" in err and "img_000_implicit" in err
    # labels naming both files by path: one image twice, both named
    both = _write(tmp_path / "both.csv", [*rows, ["reexport/img_000_implicit.dcm", "normal"]])
    assert main(_dicom_args(tmp_path, both, "--attributes", "sex")) == 2
    err = capsys.readouterr().err
    assert "is held by 2 labelled files" in err and "img_000.dcm" in err and "img_000_implicit.dcm" in err
    # the labels name 36 of the 37 files: the re-export is counted, not silently ignored
    assert main(_dicom_args(tmp_path, labels, "--attributes", "sex")) == 0
    out = capsys.readouterr().out
    assert "note: 1 file(s) under" in out and "not named in" in out
    assert json.loads((tmp_path / "d.json").read_text())["source"]["unlabelled_files"] == 1


def test_sex_codes_placeholder_birth_dates_and_unknown_reasons(tmp_path, capsys):
    labels = write_dicom_cases(tmp_path, n=48)
    rows = _rows(labels)
    rng = np.random.default_rng(1)
    for i in range(6):  # scanner exports: sex U or O, a placeholder birth date instead of an age
        demo = {
            "PatientID": f"X{i}",
            "PatientSex": "FM"[i % 2],
            "PatientBirthDate": "11111111",
            "StudyDate": "20050101",
        }
        if i >= 4:
            demo = {"PatientID": f"X{i}", "PatientSex": "UO"[i % 2], "PatientAge": "050Y"}
        name = f"export/x{i}.dcm"
        write_dicom_image(tmp_path / "dicom" / name, rng.integers(0, 900, (40, 40)).astype(np.uint16), demo)
        rows.append([name, ["normal", "abnormal"][i % 2]])
    _write(labels, rows)
    args = _dicom_args(tmp_path, labels, "--attributes", "sex,age", "--age-bins", "0,60", "--min-group-size", "2")
    assert main(args) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "d.json").read_text())
    assert "U" not in data["group_names"] and "O" not in data["group_names"]  # never a group of their own
    assert data["metadata"]["x0"]["age"] is None and data["metadata"]["x0"]["sex"] == "F"
    assert data["metadata"]["x0"]["notes"]["age"] == "placeholder birth date 11111111 and no PatientAge"
    unknown = data["group_names"].index("unknown")
    assert all(
        it["group"] == unknown for s in ("training", "validation", "test") for it in data[s] if it["case_id"][0] == "x"
    )
    # the printout says why cases with a known sex are 'unknown'
    why = next(line for line in out.splitlines() if line.startswith("'unknown' group, why"))
    assert why.startswith("'unknown' group, why (most frequent first): placeholder birth date 11111111 and no ")
    assert "PatientAge (sex known)" in why  # the 4 placeholder cases come first, the 1 U and the 1 O after them
    assert "PatientSex 'U' (unknown) is read as unknown (age known)" in why
    assert "PatientSex 'O' (other) is read as unknown (age known)" in why
    assert not any(ch.isdigit() for ch in why.replace("11111111", ""))  # no count beside the suppressed table


def test_patient_overlap_across_given_splits(tmp_path, capsys):
    table = write_jpeg_cases(tmp_path, n=48)
    rows = _rows(table)
    # P000's two images in training and test; everyone else split by patient
    fold = ["train", "val", "test"]
    rows = [rows[0] + ["fold"]] + [r + [fold[(int(r[4][1:]) % 3)]] for r in rows[1:]]
    rows[2][-1] = "test"
    _write(table, rows)
    args = ["datalist", str(table), *JPEG_ARGS, "--attributes", "sex", "--split-col", "fold"]
    assert main([*args, "--out", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    assert "1 patient_id(s) in more than one of the given splits: P000 (test/training)" in err
    assert not (tmp_path / "d.json").exists()
    assert main([*args, "--allow-patient-overlap", "--out", str(tmp_path / "d.json")]) == 0
    assert "1 patient(s) are in more than one given split" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["patient_overlap"] == 1


def test_intersections_list_non_empty_cells_and_cap_cardinality(tmp_path, capsys):
    labels = write_dicom_cases(tmp_path, n=48)
    for f in (tmp_path / "dicom").rglob("*.dcm"):  # each manufacturer's scanners at one site: 4 empty combinations
        ds = pydicom.dcmread(f)
        ds.InstitutionName = "North" if ds.Manufacturer == "ACME" else "South"
        ds.save_as(str(f))
    args = _dicom_args(tmp_path, labels, "--attributes", "sex,manufacturer,institution")
    assert main([*args, "--min-group-size", "1"]) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "d.json").read_text())
    used = {it["group"] for s in ("training", "validation", "test") for it in data[s]}
    # only the 4 combinations that hold cases are groups (not 8): ids 0..3, each listed in the table
    assert data["group_names"] == ["F|ACME|North", "F|Globex|South", "M|ACME|North", "M|Globex|South"]
    assert used == {0, 1, 2, 3} and data["group_spec"]["cells"] == data["group_names"]
    assert all(any(line.split()[1:2] == [n] for line in out.splitlines()) for n in data["group_names"])
    spec = GroupSpec.from_dict(data["group_spec"])  # the recorded spec encodes the same ids and refuses the rest
    assert spec.encode([{"sex": "M", "manufacturer": "Globex", "institution": "South"}]).tolist() == [3]
    with pytest.raises(ValueError, match=r"not among the spec's cells .*row 0 \(F\|ACME\|South\)"):
        spec.encode([{"sex": "F", "manufacturer": "ACME", "institution": "South"}])
    assert main([*args, "--max-groups", "3"]) == 2
    err = capsys.readouterr().err
    assert (
        len(used) == 4
        and "sex x manufacturer x institution gives 4 non-empty groups (of 8 combinations)" in err
        and "max_groups=3" in err
    )
