# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Every bad input of issue 11, through the bundle a user runs: one clear error naming the file, key or value, raised
before training, and no model left behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from monai_fair.__main__ import main
from monai_fair.data import DatalistCheckError
from tests.data.fixtures import truncate, write_dicom_cases, write_volume_cases
from tests.data.test_load_check import _dicom
from tests.quickstart.test_quickstart import TINY, copy_bundles, run_bundle

CLS = "bundles/baseline_classification"
SEG = "bundles/baseline_segmentation"


def _train(bundle: str, datalist, *extra: str):
    args = ["--config_file", f"{bundle}/configs/train.json", "--bundle_root", bundle, "--datalist", str(datalist)]
    tiny = TINY[bundle.split("/")[1]]
    tiny = [a for k, v in zip(tiny[::2], tiny[1::2]) if k not in extra for a in (k, v)]  # extra wins
    run_bundle([*args, *extra, *tiny])


def _check_error(excinfo) -> str:
    """The DatalistCheckError under MONAI's config-expression wrapper."""
    e = excinfo.value
    while e is not None and not isinstance(e, DatalistCheckError):
        e = e.__cause__
    assert e is not None, excinfo.value
    return str(e)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    copy_bundles(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_truncated_nifti_is_named_before_training(workdir, capsys):
    write_volume_cases(workdir, n=12, table="volumes.csv")
    assert main(["datalist", "volumes.csv", "--image-col", "image", "--mask-col", "mask", "--attributes", "sex",
                 "--out", "d.json"]) == 0  # fmt: skip
    truncate(workdir / "images/vol_004.nii.gz")
    assert main(["check", "d.json", "--spatial-dims", "3"]) == 1
    assert "vol_004.nii.gz: truncated or corrupt .nii.gz" in capsys.readouterr().out
    with pytest.raises(RuntimeError) as e:
        _train(SEG, "d.json", "--spatial_dims", "3")
    assert "1 problem(s)" in _check_error(e) and "images/vol_004.nii.gz: truncated" in _check_error(e)
    assert not (workdir / SEG / "models" / "model.pt").exists()
    # the datalist command itself refuses a truncated file, naming it with its table row
    assert main(["datalist", "volumes.csv", "--image-col", "image", "--mask-col", "mask", "--attributes", "sex",
                 "--out", "e.json"]) == 2  # fmt: skip
    assert "row 6 (image)" in capsys.readouterr().err and not (workdir / "e.json").exists()


@pytest.mark.slow
def test_datalists_a_bundle_must_refuse(workdir):
    write_dicom_cases(workdir)
    args = ["datalist", "--dicom-dir", "dicom", "--labels", "labels.csv", "--image-col", "file", "--label-col"]
    assert main([*args, "finding", "--positive-label", "abnormal", "--attributes", "sex", "--out", "d.json"]) == 0
    data = json.loads((workdir / "d.json").read_text())
    models = workdir / CLS / "models"

    # no validation split: the run would never save model.pt, so it does not start
    (workdir / "noval.json").write_text(json.dumps({**data, "validation": []}))
    with pytest.raises(RuntimeError) as e:
        _train(CLS, "noval.json")
    assert "split 'validation' is empty" in _check_error(e) and not (models / "model.pt").exists()

    # text labels in a hand-made datalist: named with their key and value
    bad = json.loads(json.dumps(data))
    bad["training"][0]["label"] = "abnormal"
    (workdir / "text.json").write_text(json.dumps(bad))
    with pytest.raises(RuntimeError) as e:
        _train(CLS, "text.json")
    case = data["training"][0]["case_id"]
    assert f"training[0] ({case}): 'label' = 'abnormal' is not a class index in 0..1" in _check_error(e)

    # mixed sizes without resizing: named, instead of a stack error at the first batch
    with pytest.raises(RuntimeError) as e:
        _train(CLS, "d.json", "--spatial_size", "$None")  # MONAI drops plain None overrides
    assert "images of 3 different sizes" in _check_error(e) and "set spatial_size" in _check_error(e)

    # a 16-bit RGB DICOM: its header looks fine, ITK cannot read its pixels. Named by the bundle's own loading check
    # in initialize, with the fix, instead of a 267-line traceback 100 s into training
    rgb16 = json.loads(json.dumps(data))
    _dicom(workdir / "dicom" / "rgb16.dcm", np.zeros((40, 48, 3), np.uint16), rgb=True, bits=16)
    rgb16["training"][0]["image"] = "dicom/rgb16.dcm"
    (workdir / "rgb16.json").write_text(json.dumps(rgb16))
    with pytest.raises(RuntimeError) as e:
        _train(CLS, "rgb16.json")
    assert "rgb16.dcm: the training chain cannot load it" in _check_error(e)
    assert "16-bit colour DICOM" in _check_error(e) and not (models / "model.pt").exists()

    # a 3D bundle on 2D images
    with pytest.raises(RuntimeError) as e:
        run_bundle(["--config_file", f"{SEG}/configs/train.json", "--bundle_root", SEG, "--datalist", "d.json",
                    "--spatial_dims", "3"])  # fmt: skip
    assert "2D image of size [40, 48], expected 3D (spatial_dims=3)" in _check_error(e)
    assert not models.exists() or not (models / "model.pt").exists()
    shutil.rmtree(models, ignore_errors=True)
