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
    load_case_metadata,
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
    """Every item of every split, with its raw attributes from the ``metadata`` block merged in."""
    meta = load_case_metadata(datalist)
    splits = ("training", "validation", "test")
    return [{**it, **meta[it["case_id"]]} for s in splits for it in load_fair_datalist(datalist, s, keys=None)[0]]


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
        assert not Path(it["image"]).is_absolute() and set(it) == {"case_id", "image", "label", "group"}
        assert set(data["metadata"][it["case_id"]]) == {"sex", "age"}  # raw attributes never in an item
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
        i = int(it["case_id"].split("_")[1])
        np.testing.assert_array_equal(_pixels(Path(it["image"])), arr["image"][i])
        assert (it["label"], it["group"], it.get("label_clean", it["label"])) == (
            arr["label"][i],
            arr["group"][i],
            arr["label_clean"][i],
        )
    seg = synthesize_segmentation_arrays(n_samples=6, image_size=16, seed=2)
    for it in _all_items(generate_segmentation_dataset(tmp_path / "s", n_samples=6, image_size=16, seed=2)):
        i = int(it["case_id"].split("_")[1])
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


# ---------------------------------------------------------------------------------------------- bias scenarios
def test_scenario_parameters_and_irreducible_default():
    from monai_fair.data.synthetic import CLASSIFICATION_DEFAULTS, SCENARIOS, scenario_parameters

    full = scenario_parameters("classification", "irreducible", 1.0)
    for k in ("group_contrast", "group_noise", "group_shift", "group_proportions"):
        np.testing.assert_allclose(full[k], CLASSIFICATION_DEFAULTS[k])  # s = 1 is the historic default
    zero = scenario_parameters("segmentation", "irreducible", 0.0)
    for k in ("group_contrast", "group_noise", "group_shift"):
        assert zero[k][0] == zero[k][1], k  # s = 0: no group difference left
    a = synthesize_classification_arrays(n_samples=20, image_size=16, seed=4)
    b = synthesize_classification_arrays(n_samples=20, image_size=16, seed=4, scenario="irreducible", strength=1.0)
    np.testing.assert_array_equal(a["image"], b["image"])
    # an explicit group parameter overrides the scenario's value
    c = synthesize_classification_arrays(n_samples=20, image_size=16, seed=4, strength=0.0, group_contrast=(0.4, 1))
    assert not np.array_equal(a["image"], c["image"])  # noise and shift came from s = 0
    assert set(SCENARIOS) == {"irreducible", "underrep", "shortcut", "label_noise", "acquisition"}
    with pytest.raises(ValueError, match="strength"):
        scenario_parameters("classification", "shortcut", 1.5)
    with pytest.raises(ValueError, match="scenari|shortcutt"):
        synthesize_classification_arrays(n_samples=10, scenario="shortcutt")


def test_shortcut_scenario_classification():
    def corr(a, mask):
        return np.corrcoef(a["group"][mask], a["label"][mask])[0, 1]

    a = synthesize_classification_arrays(n_samples=1000, image_size=16, seed=0, scenario="shortcut")
    tv, te = a["split"] < 2, a["split"] == 2
    rates = [a["label"][tv & (a["group"] == g)].mean() for g in (0, 1)]
    assert rates[0] > 0.8 and rates[1] < 0.2, rates  # 0.9 / 0.1 at s = 1
    assert corr(a, tv) < -0.6 and abs(corr(a, te)) < 0.2  # group 0 = positive in training, not at test
    b = synthesize_classification_arrays(n_samples=1000, image_size=16, seed=0, scenario="shortcut", strength=0.0)
    assert abs(corr(b, b["split"] < 2)) < 0.1
    # the cue is visible (group 0 darker skin) but does not touch labels
    assert a["image"][a["group"] == 0].mean() < a["image"][a["group"] == 1].mean() - 10
    # an unbiased validation split: the shortcut in training only; training labels and images unchanged
    c = synthesize_classification_arrays(
        n_samples=1000, image_size=16, seed=0, scenario="shortcut", shortcut_splits="training"
    )
    train, val = c["split"] == 0, c["split"] == 1
    assert corr(c, train) < -0.6 and abs(corr(c, val)) < 0.2
    np.testing.assert_array_equal(c["label"][train], a["label"][train])
    with pytest.raises(ValueError, match="shortcut_splits"):
        synthesize_classification_arrays(n_samples=10, image_size=8, scenario="shortcut", shortcut_splits="test")


def test_shortcut_scenario_segmentation():
    a = synthesize_segmentation_arrays(n_samples=200, image_size=32, seed=0, scenario="shortcut")
    forced = np.isfinite(a["location"])
    assert forced.sum() > 0 and not forced[a["split"] == 2].any() and forced[a["split"] < 2].all()
    rows = np.arange(32)[None, :, None]
    cy = (a["mask"] * rows).sum((1, 2)) / np.maximum(a["mask"].sum((1, 2)), 1)
    tv, te = a["split"] < 2, a["split"] == 2
    gap_tv = cy[tv & (a["group"] == 1)].mean() - cy[tv & (a["group"] == 0)].mean()
    gap_te = cy[te & (a["group"] == 1)].mean() - cy[te & (a["group"] == 0)].mean()
    assert gap_tv > 5 and abs(gap_te) < 3, (gap_tv, gap_te)  # group 0 upper, group 1 lower, only in training
    b = synthesize_segmentation_arrays(n_samples=200, image_size=32, seed=0, scenario="shortcut", strength=0.0)
    assert not np.isfinite(b["location"]).any()
    c = synthesize_segmentation_arrays(
        n_samples=200, image_size=32, seed=0, scenario="shortcut", shortcut_splits="training"
    )
    forced = np.isfinite(c["location"])
    assert forced[c["split"] == 0].all() and not forced[c["split"] > 0].any()


def test_label_noise_scenario():
    a = synthesize_classification_arrays(n_samples=600, image_size=16, seed=1, scenario="label_noise")
    flipped = a["label"] != a["label_clean"]
    assert flipped.sum() > 0 and (a["group"][flipped] == 0).all() and (a["split"][flipped] < 2).all()
    g0tv = (a["group"] == 0) & (a["split"] < 2)
    assert abs(flipped[g0tv].mean() - 0.4) < 0.1
    b = synthesize_classification_arrays(n_samples=600, image_size=16, seed=1, scenario="label_noise", strength=0)
    assert (b["label"] == b["label_clean"]).all()
    np.testing.assert_array_equal(a["image"], b["image"])  # only labels change with the strength

    s = synthesize_segmentation_arrays(n_samples=120, image_size=32, seed=1, scenario="label_noise")
    c = synthesize_segmentation_arrays(n_samples=120, image_size=32, seed=1, scenario="label_noise", strength=0)
    noisy = s["mask_noisy"]
    assert noisy.sum() > 0 and (s["group"][noisy] == 0).all() and (s["split"][noisy] < 2).all()
    assert not c["mask_noisy"].any()
    np.testing.assert_array_equal(s["image"], c["image"])
    np.testing.assert_array_equal(s["mask"][~noisy], c["mask"][~noisy])
    assert (s["mask"][noisy] >= c["mask"][noisy]).all() and s["mask"][noisy].sum() > c["mask"][noisy].sum()


def test_underrep_scenario_is_group_specific_and_learnable():
    # the classification scenario is rarer and fainter (7 %, salience 0.15); the mechanism at 15 % and full salience
    from monai_fair.data.synthetic_params import scenario_parameters

    cls = scenario_parameters("classification", "underrep")
    assert cls["group_proportions"] == (0.07, 0.93) and cls["specific_strength"] == 0.15
    assert scenario_parameters("segmentation", "underrep")["group_proportions"] == (0.15, 0.85)
    full = {"group_proportions": (0.15, 0.85), "specific_strength": 1.0}
    a = synthesize_classification_arrays(n_samples=900, image_size=32, seed=2, scenario="underrep", **full)
    spec = a["specific"]
    assert spec.sum() > 0 and (a["group"][spec] == 0).all() and spec[a["group"] == 0].all()  # s = 1: all of group 0
    assert abs((a["group"] == 0).mean() - 0.15) < 0.01
    x = _pool(a["image"])
    maj, mino = a["group"] == 1, a["group"] == 0

    def fit_auc(train, test):
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        clf = LogisticRegression(C=0.01, max_iter=3000).fit((x[train] - mu) / sd, a["label"][train])
        return roc_auc_score(a["label"][test], clf.predict_proba((x[test] - mu) / sd)[:, 1])

    half = mino & (np.arange(len(x)) % 2 == 0)
    learnable = fit_auc(half, mino & ~half)  # learnt from its own cases, the minority's finding is easy
    transfer = fit_auc(maj, mino)  # the majority's appearance does not carry over
    assert learnable > 0.8 and transfer < learnable - 0.15, (learnable, transfer)
    b = synthesize_classification_arrays(
        n_samples=900, image_size=32, seed=2, scenario="underrep", strength=0.0, **full
    )
    assert not b["specific"].any()
    x = _pool(b["image"])
    assert fit_auc(maj, mino) > 0.8  # s = 0: the majority's model serves the minority


def test_specific_strength_makes_the_minority_appearance_fainter():
    """``specific_strength`` scales only the group-specific appearance: the majority's images are unchanged, the
    minority's finding is less learnable from its own cases as it fades, and at 0 it carries no label."""
    kw = {"n_samples": 900, "image_size": 32, "seed": 2, "scenario": "underrep", "group_proportions": (0.3, 0.7)}
    full = synthesize_classification_arrays(**kw, specific_strength=1.0)
    mino, y = full["group"] == 0, full["label"]
    half = mino & (np.arange(len(y)) % 2 == 0)

    def own_group_auc(images):
        x = _pool(images)
        mu, sd = x[half].mean(0), x[half].std(0) + 1e-6
        clf = LogisticRegression(C=0.01, max_iter=3000).fit((x[half] - mu) / sd, y[half])
        test = mino & ~half
        return roc_auc_score(y[test], clf.predict_proba((x[test] - mu) / sd)[:, 1])

    aucs = [own_group_auc(full["image"])]
    for strength in (0.3, 0.0):
        a = synthesize_classification_arrays(**kw, specific_strength=strength)
        np.testing.assert_array_equal(a["image"][~mino], full["image"][~mino])
        np.testing.assert_array_equal(a["label"], y)
        aucs.append(own_group_auc(a["image"]))
    assert aucs[0] > aucs[1] > aucs[2] and aucs[0] > 0.8 and aucs[2] < 0.65, aucs


def test_acquisition_scenario(tmp_path):
    a = synthesize_classification_arrays(n_samples=100, image_size=16, seed=3, scenario="acquisition")
    b = synthesize_classification_arrays(n_samples=100, image_size=16, seed=3, scenario="acquisition", strength=0)
    site_b = a["group"] == 0
    np.testing.assert_array_equal(a["image"][~site_b], b["image"][~site_b])  # site A unchanged
    assert np.abs(a["image"][site_b].astype(float) - b["image"][site_b]).mean() > 10  # site B's scanner differs
    path = generate_segmentation_dataset(tmp_path, n_samples=30, image_size=16, seed=3, scenario="acquisition")
    data = json.loads(path.read_text())
    assert data["group_names"] == ["site_B", "site_A"] and data["group_spec"]["attributes"][0]["name"] == "site"
    items = _all_items(path)
    assert {it["site"] for it in items} == {"site_B", "site_A"}
    assert {it["sex"] for it in items if it["group"] == 0} == {"F", "M"}  # sex independent of the site
    assert data["synthetic"]["params"]["scenario"] == "acquisition"


def test_cli_synth_scenario(tmp_path, capsys):
    from monai_fair.__main__ import main

    args = ["synth", "--task", "segmentation", "--out", str(tmp_path), "--n-samples", "12", "--image-size", "16"]
    assert main(args + ["--scenario", "label_noise", "--strength", "0.5"]) == 0
    params = json.loads(Path(capsys.readouterr().out.strip()).read_text())["synthetic"]["params"]
    assert params["scenario"] == "label_noise" and params["strength"] == 0.5 and params["group_mask_noise"] == [0.5, 0]
    with pytest.raises(SystemExit):
        main(args + ["--scenario", "nope"])


def test_segmentation_underrep_and_acquisition_mechanisms():
    a = synthesize_segmentation_arrays(n_samples=120, image_size=32, seed=4, scenario="underrep")
    b = synthesize_segmentation_arrays(n_samples=120, image_size=32, seed=4, scenario="underrep", strength=0.0)
    spec = a["specific"]
    assert spec.any() and (a["group"][spec] == 0).all() and not b["specific"].any()
    np.testing.assert_array_equal(a["mask"], b["mask"])  # same targets, only their appearance changes
    inside = a["mask"].astype(bool)
    # the minority's lesion is hyperechoic (brighter than its surroundings) where the majority's is hypoechoic
    rel = [(img[m].mean() - img[~m].mean()) for img, m in zip(a["image"].astype(float), inside)]
    rel = np.array(rel)
    assert (rel[spec] > 0).mean() > 0.9 and (rel[a["group"] == 1] < 0).mean() > 0.9
    c = synthesize_segmentation_arrays(n_samples=60, image_size=32, seed=4, scenario="acquisition")
    d = synthesize_segmentation_arrays(n_samples=60, image_size=32, seed=4, scenario="acquisition", strength=0.0)
    site_b = c["group"] == 0
    np.testing.assert_array_equal(c["image"][~site_b], d["image"][~site_b])
    assert np.abs(c["image"][site_b].astype(float) - d["image"][site_b]).mean() > 5
