# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI LoadImaged reads what monai-fair writes: NIfTI files, single DICOM files and DICOM series folders,
with the ITK, nibabel and pydicom readers, and image/mask arrays line up whichever reader is used."""

from __future__ import annotations

import numpy as np
import pytest
from monai.data import PydicomReader
from monai.transforms import LoadImaged

from monai_fair.data.dicom import write_dicom_image, write_dicom_series
from monai_fair.data.synthetic import write_nifti


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 4000, (12, 10)).astype(np.uint16)  # rows x columns, non-square on purpose
    rgb = rng.integers(0, 255, (12, 10, 3)).astype(np.uint8)
    vol = rng.integers(0, 4000, (4, 12, 10)).astype(np.uint16)
    return {
        "gray": gray,
        "rgb": rgb,
        "vol": vol,
        "nii": write_nifti(root / "g.nii.gz", gray),
        "dcm": write_dicom_image(root / "g.dcm", gray, {"PatientSex": "F"}),
        "dcm_rgb": write_dicom_image(root / "c.dcm", rgb, {"PatientSex": "F"}),
        "series": (write_dicom_series(root / "series", vol, {"PatientSex": "M"}), root / "series")[1],
    }


@pytest.mark.parametrize("reader", ["NibabelReader", "ITKReader"])
def test_nifti(files, reader):
    out = LoadImaged("image", reader=reader, image_only=True)({"image": str(files["nii"])})
    # stored as (x, y) = transposed rows x columns, like MONAI's DICOM readers return it
    np.testing.assert_array_equal(np.asarray(out["image"]), files["gray"].T)


@pytest.mark.parametrize("reader", ["PydicomReader", "ITKReader"])
def test_single_dicom_matches_nifti(files, reader):
    out = LoadImaged("image", reader=reader, image_only=True)({"image": str(files["dcm"])})
    np.testing.assert_array_equal(np.asarray(out["image"]).squeeze(), files["gray"].T)
    nii = LoadImaged("image", reader="NibabelReader", image_only=True)({"image": str(files["nii"])})
    np.testing.assert_allclose(np.asarray(out["image"].affine)[:2, :2], np.asarray(nii["image"].affine)[:2, :2])


def test_rgb_dicom(files):
    # pydicom: declare the trailing RGB axis as the channel, giving (3, x, y)
    d = LoadImaged("image", reader=PydicomReader(channel_dim=-1), image_only=True, ensure_channel_first=True)(
        {"image": str(files["dcm_rgb"])}
    )
    assert tuple(d["image"].shape) == (3, 10, 12)
    np.testing.assert_array_equal(np.asarray(d["image"]), np.transpose(files["rgb"], (2, 1, 0)))
    # ITK: a single 2D DICOM comes back with a trailing depth of 1, (3, x, y, 1)
    d = LoadImaged("image", reader="ITKReader", image_only=True, ensure_channel_first=True)(
        {"image": str(files["dcm_rgb"])}
    )
    assert tuple(d["image"].shape) == (3, 10, 12, 1)
    np.testing.assert_array_equal(np.asarray(d["image"])[..., 0], np.transpose(files["rgb"], (2, 1, 0)))


@pytest.mark.parametrize("reader", ["PydicomReader", "ITKReader"])
def test_dicom_series_folder(files, reader):
    out = LoadImaged("image", reader=reader, image_only=True)({"image": str(files["series"])})
    arr = np.asarray(out["image"])
    assert arr.shape == (10, 12, 4)
    np.testing.assert_array_equal(arr, np.transpose(files["vol"], (2, 1, 0)))
    assert float(np.asarray(out["image"].pixdim)[2]) == pytest.approx(2.0)
