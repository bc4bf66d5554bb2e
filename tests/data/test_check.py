# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Header-only image facts (truncation included) and the datalist check: every problem, one message."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from monai_fair.__main__ import main
from monai_fair.data import DatalistCheckError, check_datalist, read_image_info
from monai_fair.data.dicom import write_dicom_image, write_dicom_series
from tests.data.fixtures import truncate, write_jpeg_cases


def _nii(path, shape, dtype=np.float32):
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype), np.eye(4)), path)
    return path


def test_image_info_shapes_and_truncation(tmp_path):
    write_jpeg_cases(tmp_path, n=1)
    jpg = tmp_path / "images/ISIC_00000.jpg"
    info = read_image_info(jpg)
    assert info.ok and info.spatial_shape == (60, 45) and info.channels == 3 and info.kind == "jpeg"
    dcm = write_dicom_image(tmp_path / "g.dcm", np.zeros((50, 40), np.uint16))
    assert read_image_info(dcm).spatial_shape == (40, 50) and read_image_info(dcm).channels == 1
    write_dicom_series(tmp_path / "series", np.zeros((5, 20, 24), np.uint16))
    assert read_image_info(tmp_path / "series").spatial_shape == (24, 20, 5)
    for name, shape in (("v.nii.gz", (10, 12, 8)), ("v.nii", (10, 12, 8)), ("flat.nii.gz", (10, 12, 1))):
        info = read_image_info(_nii(tmp_path / name, shape))
        assert info.ok and info.spatial_shape == tuple(s for s in shape if s > 1), name
    for f in (jpg, dcm, tmp_path / "v.nii.gz", tmp_path / "v.nii"):
        cut = truncate(f, 0.6)
        info = read_image_info(cut)
        assert not info.ok and "truncated" in info.error, (f.name, info.error)
    assert read_image_info(tmp_path / "nope.png").error == "file not found"
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom file")
    assert "InvalidDicomError" in read_image_info(tmp_path / "junk.dcm").error


def test_check_lists_every_problem_in_one_message(tmp_path):
    img = _nii(tmp_path / "ok.nii.gz", (16, 16))
    vol = _nii(tmp_path / "vol.nii.gz", (16, 16, 8))
    cut = truncate(_nii(tmp_path / "cut.nii.gz", (32, 32)), 0.5)
    rgba = tmp_path / "rgba.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 1, 1, 5), np.float32), np.eye(4)), rgba)
    items = [
        {"case_id": "a", "image": img.name, "label": 1, "group": 0},
        {"case_id": "b", "image": vol.name, "label": 0, "group": 1},
        {"case_id": "c", "image": cut.name, "label": 0, "group": 0},
        {"case_id": "d", "image": "missing.png", "label": 0, "group": 1},
        {"case_id": "e", "image": img.name, "label": "abnormal", "group": 1},
        {"case_id": "f", "image": img.name, "label": 1, "group": 7},
        {"case_id": "g", "image": rgba.name, "label": 1, "group": 0},
    ]
    p = tmp_path / "datalist.json"
    p.write_text(json.dumps({"training": items, "validation": [], "test": [], "group_names": ["F", "M"]}))
    with pytest.raises(DatalistCheckError) as e:
        check_datalist(p, in_channels=3, num_classes=2)
    msg = str(e.value)
    expected = [
        "7 problem(s)",
        "vol.nii.gz: 3D image of size [16, 16, 8], expected 2D",
        "cut.nii.gz: truncated",
        "missing.png: file not found",
        "training[4] (e): 'label' = 'abnormal' is not a class index in 0..1",
        "training[5] (f): 'group' = 7 is outside 0..1",
        "rgba.nii.gz: 5 channels cannot become in_channels=3",
        "split 'validation' is empty",
    ]
    for text in expected:
        assert text in msg, (text, msg)
    assert len(e.value.problems) == 7
    # the CLI prints the same, without a traceback, exit code 1
    assert main(["check", str(p), "--in-channels", "3", "--num-classes", "2"]) == 1


def test_check_segmentation_and_summary(tmp_path, capsys):
    for i in range(3):
        _nii(tmp_path / f"i{i}.nii.gz", (12, 10, 6))
        _nii(tmp_path / f"m{i}.nii.gz", (12, 10, 6) if i else (12, 10, 5), np.uint8)
    items = [{"case_id": f"c{i}", "image": f"i{i}.nii.gz", "label": f"m{i}.nii.gz", "group": i % 2} for i in range(3)]
    p = tmp_path / "d.json"
    p.write_text(
        json.dumps({"training": items[1:], "validation": items[1:], "test": items[:1], "group_names": ["F", "M"]})
    )
    with pytest.raises(
        DatalistCheckError, match=r"m0.nii.gz: mask size \[12, 10, 5\] differs from its image's \[12, 10, 6\]"
    ):
        check_datalist(p, task="segmentation", spatial_dims=3)
    p.write_text(json.dumps({"training": items[1:], "validation": items[1:], "test": [], "group_names": ["F", "M"]}))
    summary = check_datalist(p, task="segmentation", spatial_dims=3, in_channels=1)
    assert summary["splits"] == {"training": 2, "validation": 2, "test": 0} and summary["shapes"] == {"12x10x6": 4}
    assert main(["check", str(p), "--task", "segmentation", "--spatial-dims", "3"]) == 0
    assert "OK (segmentation)" in capsys.readouterr().out
    with pytest.raises(DatalistCheckError, match="2D image of size.*expected 3D|3D image of size .* expected 2D"):
        check_datalist(p, task="segmentation", spatial_dims=2)
