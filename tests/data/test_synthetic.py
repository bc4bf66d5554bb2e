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
    synthesize_classification_arrays,
    synthesize_segmentation_arrays,
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
    data = json.loads(Path(path).read_text())
    assert sum(len(data[k]) for k in ("training", "validation", "test")) == 14
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
def test_classification_bias_under_plain_training(modality):
    """A logistic regression on the pixels: the minority (F) is worse than the majority (M), both above chance.

    Uses the in-memory arrays (identical to the written files, see test_arrays_equal_files) to keep the test fast.
    """
    gaps = []
    for seed in (0, 1, 2):
        tr = synthesize_classification_arrays(n_samples=500, image_size=32, modality=modality, seed=seed)
        te = synthesize_classification_arrays(
            n_samples=300, image_size=32, modality=modality, seed=100 + seed, group_proportions=(0.5, 0.5)
        )
        xtr, xte = _pool(tr["image"]), _pool(te["image"])
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        clf = LogisticRegression(C=0.01, max_iter=3000).fit((xtr - mu) / sd, tr["label"])
        score = clf.predict_proba((xte - mu) / sd)[:, 1]
        auc = [roc_auc_score(te["label"][te["group"] == g], score[te["group"] == g]) for g in (0, 1)]
        assert auc[0] > 0.6, (seed, auc)  # the minority is learnable
        assert auc[1] - auc[0] > 0.05, (seed, auc)  # ... but clearly worse than the majority
        gaps.append(auc[1] - auc[0])
    assert np.mean(gaps) > 0.1


def _pool(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32).reshape(len(images), 16, 2, 16, 2, -1).mean((2, 4))  # 2x2 average pooling
    return x.reshape(len(x), -1)


def test_arrays_equal_files(tmp_path):
    arr = synthesize_classification_arrays(n_samples=12, image_size=16, seed=9, group_label_noise=(0.3, 0.3))
    items = _all_items(
        generate_classification_dataset(
            tmp_path / "c", n_samples=12, image_size=16, seed=9, group_label_noise=(0.3, 0.3)
        )
    )
    for it in items:
        i = int(it["id"].split("_")[1])
        np.testing.assert_array_equal(_pixels(Path(it["image"])), arr["image"][i])
        assert (it["label"], it["group"], it.get("label_clean", it["label"])) == (
            arr["label"][i],
            arr["group"][i],
            arr["label_clean"][i],
        )
    seg = synthesize_segmentation_arrays(n_samples=6, image_size=16, seed=2)
    for it in _all_items(generate_segmentation_dataset(tmp_path / "s", n_samples=6, image_size=16, seed=2)):
        i = int(it["id"].split("_")[1])
        np.testing.assert_array_equal(_pixels(Path(it["image"])).T, seg["image"][i])
        np.testing.assert_array_equal(_pixels(Path(it["label"])).T, seg["mask"][i])


def test_segmentation_bias():
    """A 3-layer CNN: minority (F) Dice clearly below the majority's, and well above a trivial mask."""
    for seed in (0, 1):
        torch.manual_seed(seed)
        tr = synthesize_segmentation_arrays(n_samples=200, image_size=32, seed=seed)
        te = synthesize_segmentation_arrays(n_samples=100, image_size=32, seed=50 + seed, group_proportions=(0.5, 0.5))
        assert set(np.unique(tr["mask"])) == {0, 1}
        x = torch.tensor(tr["image"] / 255.0, dtype=torch.float32)[:, None]
        y = torch.tensor(tr["mask"], dtype=torch.float32)[:, None]
        xt = torch.tensor(te["image"] / 255.0, dtype=torch.float32)[:, None]
        yt = torch.tensor(te["mask"], dtype=torch.float32)[:, None]
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, padding=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 5, padding=4, dilation=2),
            torch.nn.ReLU(),
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
        d = [dice[te["group"] == g].mean() for g in (0, 1)]
        assert d[0] > 0.5 and d[1] - d[0] > 0.03, (seed, d)


def test_segmentation_files(tmp_path):
    path = generate_segmentation_dataset(tmp_path, n_samples=8, image_size=32, seed=0)
    data = json.loads(path.read_text())
    assert data["label_names"] == ["background", "lesion"] and data["group_names"] == ["F", "M"]
    it = _all_items(path)[0]
    assert it["label"].endswith(".nii.gz") and _pixels(Path(it["image"])).shape == (32, 32)
    assert set(np.unique(_pixels(Path(it["label"])))) <= {0.0, 1.0}


def test_segmentation_dicom_images(tmp_path):
    path = generate_segmentation_dataset(tmp_path, n_samples=6, modality="fundus", file_format="dicom", seed=2)
    it = _all_items(path)[0]
    ds = pydicom.dcmread(it["image"])
    assert ds.Modality == "OP" and ds.pixel_array.shape == (64, 64)
    mask = _pixels(Path(it["label"]))
    # NIfTI masks are stored transposed (x, y) like MONAI's DICOM readers return the image
    assert mask.shape == (64, 64) and mask.sum() > 0


def test_cli_synth(tmp_path, capsys):
    from monai_fair.__main__ import main

    assert (
        main(
            [
                "synth",
                "--task",
                "classification",
                "--out",
                str(tmp_path),
                "--n-samples",
                "10",
                "--image-size",
                "16",
                "--modality",
                "xray",
                "--group-contrast",
                "0.5,1",
            ]
        )
        == 0
    )
    path = Path(capsys.readouterr().out.strip())
    params = json.loads(path.read_text())["synthetic"]["params"]
    assert params["n_samples"] == 10 and params["group_contrast"] == [0.5, 1.0] and params["modality"] == "xray"
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--group-noise", "a,b"])
