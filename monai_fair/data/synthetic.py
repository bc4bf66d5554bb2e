# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Synthetic, realistically biased 2D medical images with demographic attributes, as DICOM or NIfTI files.

Why synthetic: bundles, tests and demos need a dataset that is free to ship, small enough to train on a CPU in a
minute or two, and *biased in a known way*, so that fairness metrics and mitigation methods have something to
measure. The bias mechanisms are those reported for real data (e.g. Larrazabal et al., PNAS 2020, sex imbalance
in chest X-rays; Groh et al., CVPR-W 2021, Fitzpatrick17k skin tone):

* **Under-representation**: ``group_proportions`` (default 20 % female, 80 % male).
* **Harder minority**: per group ``group_contrast`` (how strongly the finding shows in the image),
  ``group_noise`` (acquisition noise) and ``group_shift`` (an appearance shift the majority never shows: darker
  skin for dermoscopy, breast soft-tissue shadows and lower exposure for X-ray, darker gain for ultrasound,
  more pigmented fundus). ``group_difficulty`` sets all three from one number per group.
* **Label noise / label bias**: ``group_label_noise`` flips that fraction of each group's stored labels
  (the image keeps showing the true class); flipped cases carry ``label_clean`` in the ``metadata`` block.

The image model (classification): every case has a latent evidence ``e = (2y - 1) + N(0, sigma_e^2)``; the
finding's visible strength is ``contrast_g * e``, so the Bayes-optimal accuracy of group ``g`` falls as
``contrast_g`` falls and ``noise_g`` rises. Default parameters give, under plain training of a small model,
a minority (F) AUC clearly below the majority (M) AUC, and both well above chance (checked in
``tests/data/test_synthetic.py`` over several seeds).

The image models themselves (pure functions, no files) are in :mod:`monai_fair.data.synthetic_images`, the
defaults, scenarios and parameter normalisation in :mod:`monai_fair.data.synthetic_params`; this module holds the
case plans and the files and datalist written.

Segmentation: the target (an ultrasound lesion or the fundus optic disc) differs from its surroundings by
``contrast_g`` in intensity, under speckle / noise of strength ``noise_g``; masks are binary NIfTI.

Bias scenarios (``scenario=..., strength=s``, s in [0, 1]; s = 0 removes the mechanism, s = 1 is the documented
full strength; explicit group parameters still override the scenario's values). Group 0 is the minority:

* ``"irreducible"`` (default, the negative control): the minority's finding shows with lower contrast, under more
  noise and an appearance shift. Information is lost, so no training method can undo it. At s = 1 exactly the
  historic defaults (classification contrast (0.4, 1), noise (0.08, 0.04), shift (0.6, 0)); s scales the group
  difference linearly. Proportions (0.2, 0.8).
* ``"underrep"``: under-representation (proportions (0.15, 0.85); classification (0.07, 0.93) with the own
  appearance at 15 % of its full salience, ``specific_strength`` 0.15, because at 15 % and full salience ERM learnt
  the minority's appearance and showed no worst-group deficit) with a *group-specific, learnable* appearance of
  the finding: a fraction s of the minority's cases show the finding only through their own cue (dermoscopy: a
  pink, amelanotic-like lesion colour instead of dark, blue-grey variegation and an irregular border; X-ray: a
  diffuse reticular pattern in the lower lungs instead of a focal opacity; ultrasound: a hyperechoic instead of a
  hypoechoic lesion; fundus: a dark instead of a bright disc). Same contrast and noise in both groups, so the
  minority is as learnable as the majority, given enough weight in training (its faint colour is still measured
  precisely: the information is there, the few cases make it hard to learn).
* ``"shortcut"``: a visible group cue (``group_cue``: skin tone / soft-tissue shadow / a bright near-field band /
  a darker fundus; it does not change the finding's contrast) correlates with the label in the training and
  validation splits only: classification P(y = 1 | group) = (0.5 + 0.4 s, 0.5 - 0.4 s) there and 0.5 at test;
  segmentation: with probability s the target lies in a group-specific part of the image (ultrasound: upper
  third of its depth range for group 0, lower third for group 1, with a smooth, round, lesion-like cyst at the
  mirrored depth that is not in the mask, so where to look matters; fundus: left / right disc) in training and
  validation, anywhere at test. ``shortcut_splits="training"`` keeps the validation split unbiased (the setting of
  methods that select on validation fairness, e.g. SNNL's FATE; default ``"training_validation"``).
  Proportions (0.5, 0.5); contrast (0.7, 0.7) for classification so the real finding is not trivially easier
  than the cue.
* ``"label_noise"``: one group's training and validation labels are noisy, test labels clean (the label-bias
  setting of the neural-collapse study): classification flips a fraction 0.4 s of group 0's labels; segmentation
  replaces a fraction s of group 0's masks by a coarse annotation (dilated by 1-3 pixels per 64). The group is
  visible (``group_cue`` 0.6). Proportions (0.3, 0.7).
* ``"acquisition"``: the attribute is the acquisition *site* (``site_B`` minority 20 %, ``site_A``), not a
  patient trait; site B's scanner applies a different intensity curve (gamma 1 + s), a colour cast / depth gain
  and faint grid-line artefacts (amplitude 0.06 s). These are invertible, so the shift is learnable, unlike
  ``irreducible``. Sex is drawn independently of the site.

Files: ``images/case_XXXX.dcm`` (Secondary Capture, with ``PatientID``, ``PatientSex``, ``PatientAge`` as
``NNNY``, ``PatientBirthDate``, ``StudyDate``) or ``images/case_XXXX.nii.gz``; ``masks/case_XXXX.nii.gz``;
``datalist.json`` in the layout of ``docs/design.md`` with the generator parameters under ``synthetic``.

Array layout: a DICOM stores rows x columns; MONAI's ITK and pydicom readers return ``(columns, rows)``
(x, y) order, so NIfTI files are written as the transposed array with the matching RAS affine
``diag(-sx, -sy, 1)``. Image and mask therefore align voxel for voxel whichever reader loads them.
Grayscale NIfTI files are 2D; RGB NIfTI files are ``(x, y, 1, 3)`` (load with ``EnsureChannelFirstd`` and
``SqueezeDimd(dim=-1)``); RGB is most natural as DICOM (the default).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option

from monai_fair.data.datalist import ITEM_KEYS
from monai_fair.data.dicom import write_dicom_image
from monai_fair.data.groups import GroupSpec
from monai_fair.data.synthetic_images import _coarse_mask, render_classification_image, render_segmentation_image
from monai_fair.data.synthetic_params import (
    ATTRIBUTE_GROUPS,
    CLASSIFICATION_DEFAULTS,
    GROUP_NAMES,
    SCENARIOS,
    SEGMENTATION_DEFAULTS,
    SHORTCUT_SPLITS,
    _normalise_params,
    _pair,
    _probabilities,
    _resolve_group_params,
    scenario_parameters,
)
from monai_fair.utils.io import atomic_write_json

__all__ = [
    "CLASSIFICATION_DEFAULTS",
    "SCENARIOS",
    "SEGMENTATION_DEFAULTS",
    "scenario_parameters",
    "generate_classification_dataset",
    "generate_segmentation_dataset",
    "ensure_synthetic_dataset",
    "render_classification_image",
    "synthesize_classification_arrays",
    "synthesize_segmentation_arrays",
    "render_segmentation_image",
    "write_nifti",
]

DATALIST_NAME = "datalist.json"
FORMAT_VERSION = 1


LABEL_NAMES = {"dermoscopy": ["benign", "malignant"], "xray": ["no_finding", "opacity"]}
SEG_LABEL_NAMES = {"ultrasound": ["background", "lesion"], "fundus": ["background", "optic_disc"]}


def _split_indices(group: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """0/1/2 = training/validation/test per sample, stratified by group (each split gets each group's share)."""
    f = np.asarray(fractions, dtype=float)
    if f.size != 3 or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"splits must be 3 non-negative fractions summing to 1, got {fractions!r}.")
    split = np.zeros(group.size, dtype=np.int64)
    for g in np.unique(group):  # loop over groups (2), not samples
        idx = rng.permutation(np.flatnonzero(group == g))
        cuts = np.round(np.cumsum(f)[:2] * idx.size).astype(int)
        split[idx[cuts[0] : cuts[1]]] = 1
        split[idx[cuts[1] :]] = 2
    return split


def _demographics(n: int, sex: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    age = np.clip(np.round(rng.normal(55, 15, n)), 18, 90).astype(int)
    study_day = rng.integers(0, 9 * 365, n)  # 2015-01-01 + days
    extra_days = rng.integers(0, 365, n)  # days since last birthday
    return {"age": age, "study_day": study_day, "extra_days": extra_days, "sex": sex}


def _dicom_demographics(i: int, sex: str, age: int, study_day: int, extra: int) -> dict[str, str]:
    study = _dt.date(2015, 1, 1) + _dt.timedelta(days=int(study_day))
    birth = study - _dt.timedelta(days=int(extra))
    try:
        birth = birth.replace(year=birth.year - int(age))
    except ValueError:  # 29 February
        birth = birth.replace(year=birth.year - int(age), day=28)
    return {
        "PatientID": f"SYN{i:05d}",
        "PatientName": f"Synthetic^{i:05d}",
        "PatientSex": sex,
        "PatientAge": f"{int(age):03d}Y",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "StudyDate": study.strftime("%Y%m%d"),
        "StudyTime": "120000",
    }


def write_nifti(path: str | os.PathLike, array: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> Path:
    """Write a ``(rows, cols)`` or ``(rows, cols, 3)`` array as NIfTI in MONAI's DICOM-compatible layout.

    The stored array is the transpose ``(cols, rows[, 1, 3])`` with the RAS affine ``diag(-sx, -sy, 1)``, i.e.
    what MONAI's ITK/pydicom readers produce for the same image stored as DICOM.
    """
    import nibabel as nib

    arr = np.asarray(array)
    if arr.ndim == 2:
        data = arr.T
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        data = np.transpose(arr, (1, 0, 2))[:, :, None, :]
    else:
        raise ValueError(f"write_nifti expects (H, W) or (H, W, 3), got {arr.shape}.")
    affine = np.diag([-float(spacing[1]), -float(spacing[0]), 1.0, 1.0])
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


# ---------------------------------------------------------------------------------------------- datasets
def _prepare_out(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "masks"):
        if (out_dir / sub).is_dir():
            shutil.rmtree(out_dir / sub)
    (out_dir / "images").mkdir()


def _write_datalist(
    out_dir: Path, items: list[dict[str, Any]], split: np.ndarray, extra: dict[str, Any], attribute: str = "sex"
) -> Path:
    spec = GroupSpec.categorical(attribute, list(ATTRIBUTE_GROUPS[attribute]))
    kept = [{k: v for k, v in it.items() if k in ITEM_KEYS} for it in items]  # raw attributes go to `metadata`
    data: dict[str, Any] = {
        "training": [it for it, s in zip(kept, split) if s == 0],
        "validation": [it for it, s in zip(kept, split) if s == 1],
        "test": [it for it, s in zip(kept, split) if s == 2],
        "group_names": spec.group_names,
        "group_spec": spec.to_dict(),
        "metadata": {it["case_id"]: {k: v for k, v in it.items() if k not in ITEM_KEYS} for it in items},
    }
    data.update(extra)
    path = out_dir / DATALIST_NAME
    atomic_write_json(path, data, indent=1)
    return path


def _sample_groups(n: int, proportions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    prop = _pair(proportions, "group_proportions")
    if np.any(prop < 0) or prop.sum() <= 0:
        raise ValueError(f"group_proportions must be non-negative, got {proportions!r}.")
    prop = prop / prop.sum()
    counts = np.floor(prop * n).astype(int)
    counts[np.argmax(prop)] += n - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(prop)), counts))


def _scenario_draws(p: Mapping[str, Any], group: np.ndarray) -> dict[str, np.ndarray]:
    """Per-case draws of the scenario mechanisms, from their own random stream (so the base draws, and therefore
    the ``irreducible`` images, do not depend on them): group-specific appearance flags, an independent sex when
    the attribute is the site, and uniforms used by the shortcut and mask-noise mechanisms."""
    rng = np.random.default_rng([int(p["seed"]), 7])
    n = group.size
    specific = rng.random(n) < _probabilities(p["group_specific"], "group_specific")[group]
    sex = (rng.random(n) < 0.5).astype(np.int64)
    return {
        "specific": specific,
        "sex": sex,
        "u1": rng.random(n),
        "u2": rng.random(n),
        "u3": rng.random(n),
        "u4": rng.random(n),
    }


def _item(i: int, g: int, plan: Mapping[str, Any], p: Mapping[str, Any], rel: str) -> dict[str, Any]:
    demo, names = plan["demo"], ATTRIBUTE_GROUPS[p["attribute"]]
    item: dict[str, Any] = {"case_id": f"case_{i:05d}", "image": rel, "label": None, "group": g}
    if p["attribute"] == "site":
        item["site"] = names[g]
    item["sex"] = GROUP_NAMES[int(plan["sex"][i])]
    item["age"] = int(demo["age"][i])
    return item


def _write_image(
    out: Path, rel: str, img: np.ndarray, i: int, plan: Mapping[str, Any], p: Mapping[str, Any], kind: str
):
    if p["file_format"] == "dicom":
        demo = plan["demo"]
        sex = GROUP_NAMES[int(plan["sex"][i])]
        meta = _dicom_demographics(i, sex, int(demo["age"][i]), demo["study_day"][i], demo["extra_days"][i])
        modality = {"dermoscopy": "XC", "xray": "DX", "ultrasound": "US", "fundus": "OP"}[p["modality"]]
        uid = f"monai-fair-{p['seed']}-{i}" if kind == "cls" else f"monai-fair-seg-{p['seed']}-{i}"
        write_dicom_image(out / rel, img, meta, modality=modality, uid_seed=uid)
    else:
        write_nifti(out / rel, img)


def generate_classification_dataset(out_dir: str | os.PathLike, **params: Any) -> Path:
    """Generate a biased binary classification dataset (see the module docstring) and return its datalist path.

    Args:
        out_dir: output folder (``images/`` and ``datalist.json`` are (re)written there).
        params: any of :data:`CLASSIFICATION_DEFAULTS`:
            ``scenario`` (``"irreducible"`` | ``"underrep"`` | ``"shortcut"`` | ``"label_noise"`` |
            ``"acquisition"``, see the module docstring) and ``strength`` (1.0, in [0, 1]), which set the group
            parameters below unless they are given explicitly;
            ``n_samples`` (800), ``image_size`` (64), ``modality`` (``"dermoscopy"`` RGB | ``"xray"`` grayscale),
            ``file_format`` (``"dicom"`` | ``"nifti"``), ``group_proportions`` ((F, M) = (0.2, 0.8)),
            ``group_contrast`` ((0.4, 1.0)), ``group_noise`` ((0.08, 0.04)), ``group_shift`` ((0.6, 0.0)),
            ``group_difficulty`` (None, or per group in [0, 1], overriding the three above),
            ``group_label_noise`` ((0, 0), per-group fraction of flipped labels), ``clean_test_labels`` (False:
            flip in every split; True: training and validation only), ``group_cue`` ((0, 0), visible group cue),
            ``group_specific`` ((0, 0), fraction of a group's cases with the group-specific finding appearance),
            ``specific_strength`` (1.0, salience of that appearance: 1 the full colour / pattern, smaller fainter),
            ``group_acquisition`` ((0, 0), site-B scanner strength), ``trainval_group_positive_fraction``
            (None, or P(y = 1 | group) in the splits named by ``shortcut_splits``: ``"training_validation"`` or
            ``"training"``), ``attribute`` (``"sex"`` |
            ``"site"``), ``positive_fraction`` (0.5), ``evidence_sd`` (0.8, per-case spread of the latent
            evidence), ``splits`` ((0.7, 0.15, 0.15)), ``seed`` (0).

    Returns:
        Path of ``out_dir/datalist.json``.
    """
    p = _normalise_params(CLASSIFICATION_DEFAULTS, params)
    plan = _classification_plan(p)
    out = Path(out_dir)
    _prepare_out(out)
    ext = ".dcm" if p["file_format"] == "dicom" else ".nii.gz"
    items = []
    for i, img in enumerate(_render_classification_cases(p, plan)):  # one file per case: I/O bound
        rel = f"images/case_{i:05d}{ext}"
        _write_image(out, rel, img, i, plan, p, "cls")
        item = _item(i, int(plan["group"][i]), plan, p, rel)
        item["label"] = int(plan["stored"][i])
        if plan["flip"][i]:
            item["label_clean"] = int(plan["y"][i])
        items.append(item)
    extra = {
        "label_names": LABEL_NAMES[p["modality"]],
        "synthetic": {
            "task": "classification",
            "version": FORMAT_VERSION,
            "params": p,
            "label_noise_flipped": int(plan["flip"].sum()),
        },
    }
    return _write_datalist(out, items, plan["split"], extra, p["attribute"])


def _check_common(p: Mapping[str, Any], modalities: Mapping[str, Any]) -> None:
    if p["modality"] not in modalities:
        raise ValueError(f"unknown modality {p['modality']!r}; use {sorted(modalities)}.")
    if p["file_format"] not in ("dicom", "nifti"):
        raise ValueError(f"file_format must be 'dicom' or 'nifti', got {p['file_format']!r}.")
    if int(p["n_samples"]) < 2 or int(p["image_size"]) < 16:
        raise ValueError(f"need n_samples >= 2 and image_size >= 16, got {p['n_samples']}, {p['image_size']}.")


def _classification_plan(p: Mapping[str, Any]) -> dict[str, Any]:
    """All random draws of a classification dataset except the per-image rendering noise (seeded by img_seeds)."""
    _check_common(p, LABEL_NAMES)
    n = int(p["n_samples"])
    label_noise = _probabilities(p["group_label_noise"], "group_label_noise")
    rng = np.random.default_rng(int(p["seed"]))
    group = _sample_groups(n, p["group_proportions"], rng)
    u_label = rng.random(n)
    evidence_noise = rng.normal(0, float(p["evidence_sd"]), n)
    u_flip = rng.random(n)
    demo = _demographics(n, group, rng)
    split = _split_indices(group, p["splits"], rng)
    img_seeds = rng.integers(0, 2**31 - 1, n)
    rate = np.full(n, float(p["positive_fraction"]))
    if p["trainval_group_positive_fraction"] is not None:  # shortcut: label rate depends on the group, not at test
        tv = _probabilities(p["trainval_group_positive_fraction"], "trainval_group_positive_fraction")
        biased = split < look_up_option(p["shortcut_splits"], SHORTCUT_SPLITS)
        rate = np.where(biased, tv[group], rate)
    y = (u_label < rate).astype(int)
    flip = u_flip < label_noise[group]
    if p["clean_test_labels"]:
        flip &= split < 2
    draws = _scenario_draws(p, group)
    return {
        "n": n,
        "group": group,
        "y": y,
        "evidence": (2 * y - 1) + evidence_noise,
        "flip": flip,
        "stored": np.where(flip, 1 - y, y),
        "demo": demo,
        "split": split,
        "img_seeds": img_seeds,
        "gp": _resolve_group_params(p),
        "sex": draws["sex"] if p["attribute"] == "site" else group,
        "specific": draws["specific"],
    }


def _render_classification_cases(p: Mapping[str, Any], plan: Mapping[str, Any]):
    gp, size = plan["gp"], int(p["image_size"])
    cue, acq = _pair(p["group_cue"], "group_cue"), _pair(p["group_acquisition"], "group_acquisition")
    for i in range(plan["n"]):
        g = int(plan["group"][i])
        yield render_classification_image(
            p["modality"],
            size,
            float(plan["evidence"][i]),
            gp["contrast"][g],
            gp["noise"][g],
            gp["shift"][g],
            np.random.default_rng(int(plan["img_seeds"][i])),
            cue=float(cue[g]),
            specific=bool(plan["specific"][i]),
            specific_strength=float(p["specific_strength"]),
            acquisition=float(acq[g]),
        )


def synthesize_classification_arrays(**params: Any) -> dict[str, np.ndarray]:
    """The images and labels :func:`generate_classification_dataset` would write, in memory (no files).

    Same parameters and the same draws, so for equal parameters the arrays equal the written pixel data.

    Returns:
        ``{"image": (N, H, W[, 3]), "label": (N,) stored labels, "label_clean": (N,), "group": (N,),
        "split": (N,) 0/1/2, "specific": (N,) bool}``.
    """
    p = _normalise_params(CLASSIFICATION_DEFAULTS, params)
    plan = _classification_plan(p)
    images = np.stack(list(_render_classification_cases(p, plan)))
    return {
        "image": images,
        "label": plan["stored"],
        "label_clean": plan["y"],
        "group": plan["group"],
        "split": plan["split"],
        "specific": plan["specific"],
    }


def generate_segmentation_dataset(out_dir: str | os.PathLike, **params: Any) -> Path:
    """Generate a biased 2D binary segmentation dataset; images DICOM or NIfTI, masks NIfTI.

    Args:
        out_dir: output folder (``images/``, ``masks/`` and ``datalist.json``).
        params: any of :data:`SEGMENTATION_DEFAULTS`: ``scenario`` and ``strength`` (see the module docstring and
            :func:`generate_classification_dataset`), ``n_samples`` (300), ``image_size`` (64), ``modality``
            (``"ultrasound"`` | ``"fundus"``), ``file_format`` of the images (``"nifti"`` | ``"dicom"``),
            ``group_proportions`` ((0.2, 0.8)), ``group_contrast`` ((0.45, 1.0)), ``group_noise`` ((0.3, 0.15)),
            ``group_shift`` ((0.5, 0.0)), ``group_difficulty``, ``group_cue``, ``group_specific``,
            ``group_acquisition`` (as for classification), ``group_mask_noise`` ((0, 0), per-group fraction of
            masks replaced by a coarse annotation, dilated by 1-3 pixels per 64), ``location_shortcut`` (0.0,
            probability that a target of the ``shortcut_splits`` lies in its group's half), ``shortcut_splits``
            (``"training_validation"`` | ``"training"``), ``clean_test_labels``,
            ``attribute``, ``splits``, ``seed``.

    Returns:
        Path of ``out_dir/datalist.json``; items have ``case_id``, ``image``, ``label`` (the mask path) and
        ``group``; the ``metadata`` block keeps ``sex``, ``age`` (and ``site`` when the attribute is the site) and
        flags coarse masks ``mask_noisy``.
    """
    p = _normalise_params(SEGMENTATION_DEFAULTS, params)
    plan = _segmentation_plan(p)
    out = Path(out_dir)
    _prepare_out(out)
    (out / "masks").mkdir()
    ext = ".dcm" if p["file_format"] == "dicom" else ".nii.gz"
    items = []
    for i, (img, mask) in enumerate(_render_segmentation_cases(p, plan)):  # one file per case: I/O bound
        rel, rel_mask = f"images/case_{i:05d}{ext}", f"masks/case_{i:05d}.nii.gz"
        _write_image(out, rel, img, i, plan, p, "seg")
        write_nifti(out / rel_mask, mask)
        item = _item(i, int(plan["group"][i]), plan, p, rel)
        item["label"] = rel_mask
        if plan["mask_noise"][i]:
            item["mask_noisy"] = True
        items.append(item)
    extra = {
        "label_names": SEG_LABEL_NAMES[p["modality"]],
        "synthetic": {
            "task": "segmentation",
            "version": FORMAT_VERSION,
            "params": p,
            "mask_noise_count": int(plan["mask_noise"].sum()),
        },
    }
    return _write_datalist(out, items, plan["split"], extra, p["attribute"])


def _segmentation_plan(p: Mapping[str, Any]) -> dict[str, Any]:
    _check_common(p, SEG_LABEL_NAMES)
    n = int(p["n_samples"])
    rng = np.random.default_rng(int(p["seed"]))
    group = _sample_groups(n, p["group_proportions"], rng)
    demo = _demographics(n, group, rng)
    split = _split_indices(group, p["splits"], rng)
    img_seeds = rng.integers(0, 2**31 - 1, n)
    draws = _scenario_draws(p, group)
    trainval = split < 2
    # shortcut: with probability location_shortcut a training/validation target lies in its group's half
    loc_p = float(p["location_shortcut"])
    if not 0.0 <= loc_p <= 1.0:
        raise ValueError(f"location_shortcut must be in [0, 1], got {loc_p!r}.")
    forced = (split < look_up_option(p["shortcut_splits"], SHORTCUT_SPLITS)) & (draws["u1"] < loc_p)
    location = np.where(group == 0, 0.35 * draws["u2"], 0.65 + 0.35 * draws["u2"])
    noise = draws["u3"] < _probabilities(p["group_mask_noise"], "group_mask_noise")[group]
    if p["clean_test_labels"]:
        noise &= trainval
    return {
        "n": n,
        "group": group,
        "demo": demo,
        "split": split,
        "img_seeds": img_seeds,
        "gp": _resolve_group_params(p),
        "sex": draws["sex"] if p["attribute"] == "site" else group,
        "specific": draws["specific"],
        "location": np.where(forced, location, np.nan),
        "mask_noise": noise,
        "mask_noise_radius": 1 + (draws["u4"] * 3).astype(int).clip(0, 2),
    }


def _render_segmentation_cases(p: Mapping[str, Any], plan: Mapping[str, Any]):
    gp, size = plan["gp"], int(p["image_size"])
    cue, acq = _pair(p["group_cue"], "group_cue"), _pair(p["group_acquisition"], "group_acquisition")
    for i in range(plan["n"]):
        g = int(plan["group"][i])
        loc = float(plan["location"][i])
        img, mask = render_segmentation_image(
            p["modality"],
            size,
            gp["contrast"][g],
            gp["noise"][g],
            gp["shift"][g],
            np.random.default_rng(int(plan["img_seeds"][i])),
            cue=float(cue[g]),
            specific=bool(plan["specific"][i]),
            acquisition=float(acq[g]),
            location=None if np.isnan(loc) else loc,
            distractor=bool(p["distractor"]),
        )
        if plan["mask_noise"][i]:
            mask = _coarse_mask(mask, int(plan["mask_noise_radius"][i]))
        yield img, mask


def synthesize_segmentation_arrays(**params: Any) -> dict[str, np.ndarray]:
    """The images and masks :func:`generate_segmentation_dataset` would write, in memory (no files).

    Returns:
        ``{"image": (N, H, W) uint8, "mask": (N, H, W) uint8 (as stored: coarse where ``mask_noisy``),
        "group": (N,), "split": (N,), "specific": (N,) bool, "location": (N,) forced position or NaN,
        "mask_noisy": (N,) bool}``.
    """
    p = _normalise_params(SEGMENTATION_DEFAULTS, params)
    plan = _segmentation_plan(p)
    pairs = list(_render_segmentation_cases(p, plan))
    return {
        "image": np.stack([a for a, _ in pairs]),
        "mask": np.stack([b for _, b in pairs]),
        "group": plan["group"],
        "split": plan["split"],
        "specific": plan["specific"],
        "location": plan["location"],
        "mask_noisy": plan["mask_noise"],
    }


def ensure_synthetic_dataset(out_dir: str | os.PathLike, task: str = "classification", **params: Any) -> str:
    """Return ``out_dir/datalist.json``, generating the dataset only when it is missing or was made differently.

    The parameters (defaults filled in) are compared with those recorded in the existing datalist under
    ``synthetic.params``; any difference (or another task) regenerates the dataset. Bundles call this in their
    ``initialize`` section.

    Returns:
        The datalist path as a string (convenient in bundle configs).
    """
    if task not in ("classification", "segmentation"):
        raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
    defaults = CLASSIFICATION_DEFAULTS if task == "classification" else SEGMENTATION_DEFAULTS
    wanted = _normalise_params(defaults, params)
    path = Path(out_dir) / DATALIST_NAME
    if path.is_file():
        try:
            rec = json.loads(path.read_text()).get("synthetic", {})
        except (OSError, ValueError):
            rec = {}
        if not rec:
            # not made by this generator: a user's own datalist is used as it is, never overwritten.
            return str(path)
        if rec.get("task") == task and rec.get("params") == wanted and rec.get("version") == FORMAT_VERSION:
            return str(path)
    gen = generate_classification_dataset if task == "classification" else generate_segmentation_dataset
    return str(gen(out_dir, **wanted))
