# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Transform chains for real images: non-square, mixed sizes, gray <-> RGB, DICOM tags kept out of batches, 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.transforms import RandRotate90d

from monai_fair.data import MatchChannelsd, SqueezeTrailingDimsd, classification_transforms, segmentation_transforms
from monai_fair.data.dicom import write_dicom_image
from tests.data.fixtures import write_jpeg_cases, write_volume_cases


def test_match_channels_values():
    rgb = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(3, 2, 4)
    gray = MatchChannelsd("x", 1)({"x": rgb})["x"]
    np.testing.assert_allclose(gray[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2], rtol=1e-6)
    rgba = torch.cat([rgb, torch.ones(1, 2, 4)])
    assert torch.equal(MatchChannelsd("x", 3)({"x": rgba})["x"], rgb)
    one = torch.rand(1, 5, 6, 7)
    three = MatchChannelsd("x", 3)({"x": one})["x"]
    assert three.shape == (3, 5, 6, 7) and all(torch.equal(three[c], one[0]) for c in range(3))
    assert torch.equal(MatchChannelsd("x", 1)({"x": torch.cat([one, one])})["x"], one)  # gray + alpha
    img = MetaTensor(torch.rand(5, 4, 4), meta={"filename_or_obj": "/data/odd.tif"})
    with pytest.raises(ValueError, match=r"/data/odd.tif: 5 channel\(s\), the network takes 3"):
        MatchChannelsd("x", 3)({"x": img})


def test_squeeze_trailing_dims_names_the_file():
    img = MetaTensor(torch.rand(1, 8, 6, 1), meta={"filename_or_obj": "a.dcm"})
    assert SqueezeTrailingDimsd("x", 2)({"x": img})["x"].shape == (1, 8, 6)
    vol = MetaTensor(torch.rand(1, 8, 6, 5), meta={"filename_or_obj": "/d/vol.nii.gz"})
    with pytest.raises(
        ValueError, match=r"/d/vol.nii.gz: image of shape \(8, 6, 5\).*spatial_dims=2.*--spatial_dims 3"
    ):
        SqueezeTrailingDimsd("x", 2)({"x": vol})


def test_classification_chain_on_real_files(tmp_path):
    """600x450-like RGB JPEGs and grayscale DICOMs of several sizes become one batch; no header tag survives."""
    write_jpeg_cases(tmp_path, n=2)
    write_dicom_image(tmp_path / "a.dcm", np.full((30, 20), 700, np.uint16), {"PatientSex": "F", "PatientAge": "045Y"})
    write_dicom_image(tmp_path / "b.dcm", np.full((40, 44), 900, np.uint16), {"PatientSex": "M", "PatientAge": "061Y"})
    files = [tmp_path / "images/ISIC_00000.jpg", tmp_path / "images/ISIC_00001.jpg", tmp_path / "a.dcm"]
    files.append(tmp_path / "b.dcm")
    for stage in ("train", "eval"):
        t = classification_transforms(stage, spatial_size=(24, 32), in_channels=3)
        out = [t({"image": str(f), "label": 1, "group": 0, "case_id": f.stem}) for f in files]
        batch = list_data_collate(out)
        assert batch["image"].shape == (4, 3, 24, 32) and float(batch["image"].max()) <= 1.0
        assert batch["label"].tolist() == [1] * 4 and batch["case_id"] == [f.stem for f in files]
        if stage == "eval":
            meta = out[2]["image"].meta
            assert meta["filename_or_obj"].endswith("a.dcm")
            assert not any(k.startswith("0010|") for k in meta)  # PatientSex/Age tags are gone
    gray = classification_transforms("eval", spatial_size=(16, 16), in_channels=1)({"image": str(files[0])})
    assert gray["image"].shape == (1, 16, 16)
    square = classification_transforms("train", spatial_size=(16, 16))
    assert any(isinstance(x, RandRotate90d) for x in square.transforms)
    non_square = classification_transforms("train", spatial_size=(16, 24))
    assert not any(isinstance(x, RandRotate90d) for x in non_square.transforms)
    padded = classification_transforms("eval", spatial_size=(64, 64), resize_mode="pad")({"image": str(files[2])})
    assert padded["image"].shape == (3, 64, 64) and float(padded["image"][:, :10].abs().sum()) == 0.0


def test_segmentation_chain_3d_patches_and_binarised_masks(tmp_path):
    write_volume_cases(tmp_path, n=1, shape=(20, 18, 12))
    item = {"image": str(tmp_path / "images/vol_000.nii.gz"), "label": str(tmp_path / "masks/vol_000.nii.gz")}
    import nibabel as nib

    m = nib.load(item["label"])
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj) * 255, m.affine), tmp_path / "mask255.nii.gz")
    item255 = dict(item, label=str(tmp_path / "mask255.nii.gz"))
    patches = segmentation_transforms("train", spatial_dims=3, patch_size=16, num_samples=3)(dict(item255, group=1))
    assert len(patches) == 3 and all(p["image"].shape == (1, 16, 16, 16) for p in patches)
    assert all(set(torch.unique(p["label"]).tolist()) <= {0.0, 1.0} for p in patches)
    full = segmentation_transforms("eval", spatial_dims=3, patch_size=16)(item255)
    assert full["image"].shape == (1, 20, 18, 12) and full["label"].shape == (1, 20, 18, 12)
    np.testing.assert_array_equal(full["label"][0].numpy(), np.asarray(m.dataobj) > 0)
    with pytest.raises(RuntimeError) as e:  # MONAI's Compose wraps it; the cause names the file
        segmentation_transforms("eval", spatial_dims=2)(item)
    assert "vol_000.nii.gz: image of shape (20, 18, 12)" in str(e.value.__cause__)
