# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Synthetic biased data: files, datalist layout, determinism, and the bias a small model picks up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from monai_fair.data import (
    ensure_synthetic_dataset,
    generate_classification_dataset,
    generate_segmentation_dataset,
    load_fair_datalist,
    read_dicom_demographics,
)


def _pixels(path: Path) -> np.ndarray:
    if path.suffix == ".dcm":
        return pydicom.dcmread(str(path)).pixel_array.astype(np.float32)
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


def _all_items(datalist: Path) -> list[dict]:
    return [it for split in ("training", "validation", "test") for it in load_fair_datalist(datalist, split)[0]]


def test_small_dataset_is_fast_and_well_formed(tmp_path):
    t0 = time.perf_counter()
    path = generate_classification_dataset(tmp_path / "c", n_samples=40, seed=3)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0  # ~0.1-1 s on an idle machine; generous for a loaded CI box
    data = json.loads(path.read_text())
    assert data["group_names"] == ["F", "M"]
    assert data["label_names"] == ["benign", "malignant"]
    assert data["group_spec"]["attributes"][0]["name"] == "sex"
    n_split = [len(data[k]) for k in ("training", "validation", "test")]
    assert sum(n_split) == 40 and all(n > 0 for n in n_split)
    items = _all_items(path)
    groups = np.array([it["group"] for it in items])
    assert (groups == 0).sum() == 8  # 20 % female
    for it in data["training"]:
        assert not Path(it["image"]).is_absolute() and set(it) >= {"image", "label", "group", "sex", "age"}
    for it in items[:5]:
        ds = pydicom.dcmread(it["image"])
        assert ds.PhotometricInterpretation == "RGB" and ds.pixel_array.shape == (64, 64, 3)
        assert ds.PatientSex == it["sex"] and ds.PatientAge == f"{it['age']:03d}Y"
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        demo = read_dicom_demographics(it["image"])
        assert demo["sex"] == it["sex"] and demo["age"] == it["age"]
        # the birth date agrees with the age string
        del ds.PatientAge
        ds.save_as(str(tmp_path / "noage.dcm"))
        assert int(read_dicom_demographics(tmp_path / "noage.dcm")["age"]) == it["age"]


def test_deterministic_and_ensure_regenerates_only_on_change(tmp_path):
    p1 = generate_classification_dataset(tmp_path / "a", n_samples=20, seed=5, modality="xray")
    p2 = generate_classification_dataset(tmp_path / "b", n_samples=20, seed=5, modality="xray")
    d1, d2 = json.loads(p1.read_text()), json.loads(p2.read_text())
    assert d1["training"] == d2["training"]
    img1 = pydicom.dcmread(str(tmp_path / "a" / d1["training"][0]["image"]))
    img2 = pydicom.dcmread(str(tmp_path / "b" / d2["training"][0]["image"]))
    assert img1.PhotometricInterpretation == "MONOCHROME2"
    np.testing.assert_array_equal(img1.pixel_array, img2.pixel_array)
    assert img1.SOPInstanceUID == img2.SOPInstanceUID

    out = tmp_path / "e"
    path = ensure_synthetic_dataset(out, n_samples=12, seed=1)
    mtime = Path(path).stat().st_mtime_ns
    assert ensure_synthetic_dataset(out, n_samples=12, seed=1) == path
    assert Path(path).stat().st_mtime_ns == mtime  # not regenerated
    ensure_synthetic_dataset(out, n_samples=14, seed=1)  # params differ: regenerated
    assert sum(len(v) for k, v in json.loads(Path(path).read_text()).items() if k in ("training", "validation", "test")) == 14
    assert len(list((out / "images").iterdir())) == 14  # stale files removed
    with pytest.raises(TypeError, match="n_sample"):
        ensure_synthetic_dataset(out, n_sample=3)


def test_label_noise_and_params(tmp_path):
    path = generate_classification_dataset(
        tmp_path, n_samples=200, image_size=16, seed=0, group_label_noise=(0.5, 0.0), file_format="nifti"
    )
    items = _all_items(path)
    flipped = [it for it in items if "label_clean" in it]
    assert all(it["group"] == 0 and it["label"] == 1 - it["label_clean"] for it in flipped)
    assert 10 <= len(flipped) <= 30  # ~ 0.5 * 40 females
    assert json.loads(path.read_text())["synthetic"]["label_noise_flipped"] == len(flipped)
    assert _pixels(Path(items[0]["image"])).shape == (16, 16, 1, 3)
    with pytest.raises(ValueError, match="one value per group"):
        generate_classification_dataset(tmp_path, n_samples=10, group_contrast=(1, 2, 3))
    with pytest.raises(ValueError, match="modality"):
        generate_classification_dataset(tmp_path, n_samples=10, modality="mri")


@pytest.mark.parametrize("modality", ["dermoscopy", "xray"])
def test_classification_bias_under_plain_training(tmp_path, modality):
    """A logistic regression on the pixels: the minority (F) is worse than the majority (M), both above chance."""
    gaps = []
    for seed in (0, 1, 2):
        tr = generate_classification_dataset(tmp_path / "tr", n_samples=500, image_size=32, modality=modality, seed=seed)
        te = generate_classification_dataset(
            tmp_path / "te", n_samples=300, image_size=32, modality=modality, seed=100 + seed, group_proportions=(0.5, 0.5)
        )
        (xtr, ytr, _), (xte, yte, gte) = (_xy(_all_items(p)) for p in (tr, te))
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        clf = LogisticRegression(C=0.01, max_iter=3000).fit((xtr - mu) / sd, ytr)
        score = clf.predict_proba((xte - mu) / sd)[:, 1]
        auc = [roc_auc_score(yte[gte == g], score[gte == g]) for g in (0, 1)]
        assert auc[0] > 0.6, (seed, auc)  # the minority is learnable
        assert auc[1] - auc[0] > 0.05, (seed, auc)  # ... but clearly worse than the majority
        gaps.append(auc[1] - auc[0])
    assert np.mean(gaps) > 0.1


def _xy(items):
    x = np.stack([_pixels(Path(it["image"])).reshape(-1) for it in items])
    return x, np.array([it["label"] for it in items]), np.array([it["group"] for it in items])


def test_segmentation_files_and_bias(tmp_path):
    torch.manual_seed(0)
    dices = []
    for seed in (0, 1):
        tr = generate_segmentation_dataset(tmp_path / "tr", n_samples=160, image_size=32, seed=seed)
        te = generate_segmentation_dataset(
            tmp_path / "te", n_samples=80, image_size=32, seed=50 + seed, group_proportions=(0.5, 0.5)
        )
        data = json.loads(tr.read_text())
        assert data["label_names"] == ["background", "lesion"]
        items_tr, items_te = _all_items(tr), _all_items(te)
        assert items_tr[0]["label"].endswith(".nii.gz")
        x = torch.tensor(np.stack([_pixels(Path(it["image"])) for it in items_tr]) / 255.0)[:, None].float()
        y = torch.tensor(np.stack([_pixels(Path(it["label"])) for it in items_tr]))[:, None].float()
        assert set(np.unique(y.numpy())) == {0.0, 1.0}
        xt = torch.tensor(np.stack([_pixels(Path(it["image"])) for it in items_te]) / 255.0)[:, None].float()
        yt = torch.tensor(np.stack([_pixels(Path(it["label"])) for it in items_te]))[:, None].float()
        gt = np.array([it["group"] for it in items_te])
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 5, padding=4, dilation=2), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 1, 5, padding=2),
        )
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(150):
            idx = torch.randint(0, len(x), (32,), generator=gen)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            p = (net(xt) > 0).float()
        dice = (2 * (p * yt).sum((1, 2, 3)) / (p.sum((1, 2, 3)) + yt.sum((1, 2, 3)) + 1e-6)).numpy()
        d = [dice[gt == g].mean() for g in (0, 1)]
        assert d[0] > 0.5 and d[1] - d[0] > 0.03, (seed, d)
        dices.append(d)


def test_segmentation_dicom_images(tmp_path):
    path = generate_segmentation_dataset(tmp_path, n_samples=6, modality="fundus", file_format="dicom", seed=2)
    it = _all_items(path)[0]
    ds = pydicom.dcmread(it["image"])
    assert ds.Modality == "OP" and ds.pixel_array.shape == (64, 64)
    mask = _pixels(Path(it["label"]))
    # NIfTI masks are stored transposed (x, y) like MONAI's DICOM readers return the image
    assert mask.shape == (64, 64) and mask.sum() > 0
