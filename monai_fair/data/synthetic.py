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

Segmentation: the target (an ultrasound lesion or the fundus optic disc) differs from its surroundings by
``contrast_g`` in intensity, under speckle / noise of strength ``noise_g``; masks are binary NIfTI.

Bias scenarios (``scenario=..., strength=s``, s in [0, 1]; s = 0 removes the mechanism, s = 1 is the documented
full strength; explicit group parameters still override the scenario's values). Group 0 is the minority:

* ``"irreducible"`` (default, the negative control): the minority's finding shows with lower contrast, under more
  noise and an appearance shift. Information is lost, so no training method can undo it. At s = 1 exactly the
  historic defaults (classification contrast (0.4, 1), noise (0.08, 0.04), shift (0.6, 0)); s scales the group
  difference linearly. Proportions (0.2, 0.8).
* ``"underrep"``: under-representation (proportions (0.15, 0.85)) with a *group-specific, learnable* appearance of
  the finding: a fraction s of the minority's cases show the finding only through their own cue (dermoscopy: a
  pink, amelanotic-like lesion colour instead of dark, blue-grey variegation and an irregular border; X-ray: a
  diffuse reticular pattern in the lower lungs instead of a focal opacity; ultrasound: a hyperechoic instead of a
  hypoechoic lesion; fundus: a dark instead of a bright disc). Same contrast and noise in both groups, so the
  minority is exactly as learnable as the majority, given enough weight in training.
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
from scipy import ndimage

from monai_fair.data.datalist import ITEM_KEYS
from monai_fair.data.dicom import write_dicom_image
from monai_fair.data.groups import GroupSpec
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

GROUP_NAMES = ("F", "M")
ATTRIBUTE_GROUPS = {"sex": GROUP_NAMES, "site": ("site_B", "site_A")}
SCENARIOS = ("irreducible", "underrep", "shortcut", "label_noise", "acquisition")
DATALIST_NAME = "datalist.json"
FORMAT_VERSION = 1

CLASSIFICATION_DEFAULTS: dict[str, Any] = {
    "n_samples": 800,
    "image_size": 64,
    "modality": "dermoscopy",
    "file_format": "dicom",
    "group_proportions": (0.2, 0.8),
    "group_contrast": (0.4, 1.0),
    "group_noise": (0.08, 0.04),
    "group_shift": (0.6, 0.0),
    "group_difficulty": None,
    "group_label_noise": (0.0, 0.0),
    "positive_fraction": 0.5,
    "evidence_sd": 0.8,
    "splits": (0.7, 0.15, 0.15),
    "seed": 0,
    "scenario": "irreducible",
    "strength": 1.0,
    "attribute": "sex",
    "group_cue": (0.0, 0.0),
    "group_specific": (0.0, 0.0),
    "group_acquisition": (0.0, 0.0),
    "trainval_group_positive_fraction": None,
    "clean_test_labels": False,
    "shortcut_splits": "training_validation",
}

SEGMENTATION_DEFAULTS: dict[str, Any] = {
    "n_samples": 300,
    "image_size": 64,
    "modality": "ultrasound",
    "file_format": "nifti",
    "group_proportions": (0.2, 0.8),
    "group_contrast": (0.45, 1.0),
    "group_noise": (0.3, 0.15),
    "group_shift": (0.5, 0.0),
    "group_difficulty": None,
    "splits": (0.7, 0.15, 0.15),
    "seed": 0,
    "scenario": "irreducible",
    "strength": 1.0,
    "attribute": "sex",
    "group_cue": (0.0, 0.0),
    "group_specific": (0.0, 0.0),
    "group_acquisition": (0.0, 0.0),
    "group_mask_noise": (0.0, 0.0),
    "location_shortcut": 0.0,
    "distractor": False,
    "clean_test_labels": False,
    "shortcut_splits": "training_validation",
}

#: the splits that carry the shortcut: ``0`` training, ``1`` validation (the test split never does)
SHORTCUT_SPLITS = {"training_validation": 2, "training": 1}

NUISANCE_SD = 0.6
LABEL_NAMES = {"dermoscopy": ["benign", "malignant"], "xray": ["no_finding", "opacity"]}
SEG_LABEL_NAMES = {"ultrasound": ["background", "lesion"], "fundus": ["background", "optic_disc"]}


# ---------------------------------------------------------------------------------------------- helpers
def _pair(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, len(GROUP_NAMES))
    if arr.size != len(GROUP_NAMES):
        raise ValueError(f"{name} needs one value per group {list(GROUP_NAMES)}, got {value!r}.")
    return arr


def _resolve_group_params(p: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-group contrast / noise / shift; ``group_difficulty`` d in [0, 1] overrides them when given.

    With difficulty ``d``: ``contrast = 1 - 0.5 d``, ``noise = base_noise * (1 + d)``, ``shift = 0.6 d``.
    """
    contrast, noise, shift = (_pair(p[k], k) for k in ("group_contrast", "group_noise", "group_shift"))
    if p.get("group_difficulty") is not None:
        d = _pair(p["group_difficulty"], "group_difficulty")
        if np.any((d < 0) | (d > 1)):
            raise ValueError(f"group_difficulty must be in [0, 1], got {p['group_difficulty']!r}.")
        base = float(np.min(noise))
        contrast, noise, shift = 1.0 - 0.5 * d, base * (1.0 + d), 0.6 * d
    if np.any(contrast <= 0) or np.any(noise < 0):
        raise ValueError("group_contrast must be > 0 and group_noise >= 0.")
    return {"contrast": contrast, "noise": noise, "shift": shift}


def scenario_parameters(task: str, scenario: str = "irreducible", strength: float = 1.0) -> dict[str, Any]:
    """The generator parameters a bias scenario sets, at ``strength`` in [0, 1] (see the module docstring).

    ``strength = 0`` removes the scenario's mechanism (the groups then differ only in what the scenario keeps
    fixed, e.g. their proportions or a visible group cue); ``strength = 1`` is the documented full strength.

    Args:
        task: ``"classification"`` or ``"segmentation"``.
        scenario: one of :data:`SCENARIOS`.
        strength: the mechanism's strength in [0, 1].
    """
    task = look_up_option(task, ("classification", "segmentation"))
    scenario = look_up_option(scenario, SCENARIOS)
    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}.")
    cls = task == "classification"
    same = {"group_contrast": (1.0, 1.0), "group_noise": (0.04, 0.04) if cls else (0.15, 0.15), "group_shift": (0, 0)}
    if scenario == "irreducible":  # s = 1 gives exactly the historic defaults
        if cls:
            out = {"group_contrast": (1 - 0.6 * s, 1.0), "group_noise": (0.04 + 0.04 * s, 0.04)}
            out["group_shift"] = (0.6 * s, 0.0)
        else:
            out = {"group_contrast": (1 - 0.55 * s, 1.0), "group_noise": (0.15 + 0.15 * s, 0.15)}
            out["group_shift"] = (0.5 * s, 0.0)
        out["group_proportions"] = (0.2, 0.8)
    elif scenario == "underrep":
        out = {**same, "group_proportions": (0.15, 0.85), "group_specific": (s, 0.0)}
    elif scenario == "shortcut":
        out = {**same, "group_proportions": (0.5, 0.5), "group_cue": (0.6, 0.0)}
        if cls:
            out["group_contrast"] = (0.7, 0.7)
            out["trainval_group_positive_fraction"] = (0.5 + 0.4 * s, 0.5 - 0.4 * s)
        else:
            out["location_shortcut"] = s
            out["distractor"] = True
    elif scenario == "label_noise":
        out = {**same, "group_proportions": (0.3, 0.7), "group_cue": (0.6, 0.0), "clean_test_labels": True}
        out["group_label_noise" if cls else "group_mask_noise"] = (0.4 * s if cls else s, 0.0)
    else:  # acquisition
        out = {**same, "group_proportions": (0.2, 0.8), "group_acquisition": (s, 0.0), "attribute": "site"}
    return {"scenario": scenario, "strength": s, **out}


def _normalise_params(defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TypeError(f"unknown synthetic-data parameter(s) {unknown}; valid: {sorted(defaults)}.")
    task = "classification" if "group_label_noise" in defaults else "segmentation"
    p = dict(defaults)
    # the scenario's values first, then the caller's explicit parameters on top
    p.update(
        scenario_parameters(
            task, params.get("scenario", defaults["scenario"]), params.get("strength", defaults["strength"])
        )
    )
    p.update(params)
    p["attribute"] = look_up_option(p["attribute"], tuple(ATTRIBUTE_GROUPS))
    try:
        look_up_option(p["shortcut_splits"], SHORTCUT_SPLITS)
    except ValueError as e:
        raise ValueError(f"shortcut_splits: {e}") from None
    # JSON-friendly canonical form (tuples -> lists, numpy -> python) so recorded params compare equal.
    return json.loads(json.dumps(p, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _probabilities(value: Any, name: str) -> np.ndarray:
    arr = _pair(value, name)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"{name} must be in [0, 1] per group, got {value!r}.")
    return arr


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


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(c, c, indexing="ij")  # (row, col) in [-1, 1]


def _blob(
    yy: np.ndarray,
    xx: np.ndarray,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    rot: float,
    harmonics: np.ndarray,
    softness: float,
) -> np.ndarray:
    """Soft mask (0..1) of an ellipse whose radius is modulated by Fourier ``harmonics`` (irregular border)."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(rot), np.sin(rot)
    u, v = c * dx + s * dy, -s * dx + c * dy
    theta = np.arctan2(v, u)
    k = np.arange(2, 2 + harmonics.shape[0])[:, None, None]
    mod = 1.0 + np.sum(harmonics[:, 0, None, None] * np.cos(k * theta + harmonics[:, 1, None, None]), axis=0)
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / np.maximum(mod, 0.3)
    return 1.0 / (1.0 + np.exp((r - 1.0) / softness))


# ---------------------------------------------------------------------------------------------- rendering
def _acquire(img: np.ndarray, acquisition: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Site-B scanner of the ``acquisition`` scenario on a [0, 1] image: gamma ``1 + a``, a colour cast (RGB) or a
    depth gain (grayscale) and faint horizontal grid lines of amplitude ``0.06 a``; all invertible, no noise."""
    if acquisition <= 0:
        return img
    a = float(acquisition)
    img = np.clip(img, 0, 1) ** (1.0 + a)
    if img.ndim == 3:
        img = img * np.array([1.0, 1.0 - 0.12 * a, 1.0 - 0.25 * a])
    else:
        img = img * (1.0 - 0.3 * a * (yy + 1.0) / 2.0)
    lines = 0.06 * a * (np.cos(np.pi * (yy + 1.0) * yy.shape[0] / 4.0) > 0.7)
    return img + (lines[..., None] if img.ndim == 3 else lines)


def render_classification_image(
    modality: str,
    size: int,
    evidence: float,
    contrast: float,
    noise: float,
    shift: float,
    rng: np.random.Generator,
    *,
    cue: float = 0.0,
    specific: bool = False,
    acquisition: float = 0.0,
) -> np.ndarray:
    """One image whose finding has visible strength ``contrast * evidence`` (evidence > 0: positive-looking).

    Args:
        cue: strength of a visible group cue that leaves the finding's contrast unchanged (skin tone of the
            surrounding skin; soft-tissue shadows), used by the ``shortcut`` and ``label_noise`` scenarios.
        specific: show the finding through the group-specific appearance (``underrep`` scenario).
        acquisition: site-B scanner strength (``acquisition`` scenario), see :func:`_acquire`.

    Returns ``(size, size, 3)`` uint8 for dermoscopy, ``(size, size)`` uint16 (12-bit) for xray.
    """
    yy, xx = _grid(size)
    # signed visible strength of the finding: group contrast times the evidence, plus a case-level nuisance that
    # does not depend on the label (natural variation), so a low contrast means a low signal-to-nuisance ratio
    s = contrast * evidence + rng.normal(0.0, NUISANCE_SD)
    t = 1.0 / (1.0 + np.exp(-2.0 * s))  # 0 benign-looking .. 1 malignant/opacity-looking
    # common appearance of the finding; a group-specific case shows a label-free mid value there instead
    tc = 0.5 if specific else t
    if modality == "dermoscopy":
        tn = rng.normal(0, 0.05)
        tone = np.clip(shift + cue + tn, 0, 1)  # appearance shift / group cue: darker skin
        tone_lesion = np.clip(shift + tn, 0, 1)  # only the shift (not the cue) darkens the lesion too
        light, dark = np.array([0.93, 0.76, 0.66]), np.array([0.45, 0.30, 0.22])
        skin = (1 - tone) * light + tone * dark
        img = np.broadcast_to(skin, (size, size, 3)).copy()
        img *= (1 + 0.03 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(5 * yy))[..., None]
        # lesion: irregular border and dark, blue-grey variegated colour grow with t
        harm = np.stack([rng.normal(0, 0.03 + 0.15 * tc, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
        cy, cx = rng.normal(0, 0.08, 2)
        r = rng.uniform(0.3, 0.5)
        m = _blob(yy, xx, cy, cx, r * rng.uniform(0.8, 1.0), r, rng.uniform(0, np.pi), harm, 0.06)
        benign_col, malig_col = np.array([0.62, 0.42, 0.30]), np.array([0.22, 0.16, 0.22])
        lesion_col = (1 - tc) * benign_col + tc * malig_col
        if specific:  # amelanotic-like: the finding shows as a pink-red colour, not as dark variegation
            lesion_col = (1 - t) * benign_col + t * np.array([0.85, 0.40, 0.45])
        lesion_col = lesion_col * (1 - 0.4 * tone_lesion)  # lesions on darker skin are darker too: less contrast
        veil = _blob(yy, xx, cy + rng.normal(0, 0.1), cx + rng.normal(0, 0.1), 0.18, 0.15, 0.0, harm[:2] * 0, 0.1)
        lesion = lesion_col[None, None, :] + (tc * 0.25 * veil)[..., None] * np.array([-0.05, 0.05, 0.25])
        img = img * (1 - m[..., None]) + lesion * m[..., None]
        vignette = np.clip(1.25 - 0.6 * (xx**2 + yy**2), 0, 1)
        img = _acquire(img * vignette[..., None], acquisition, xx, yy)
        img = img + rng.normal(0, noise, img.shape)
        img = ndimage.gaussian_filter(img, sigma=(0.6, 0.6, 0))
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if modality == "xray":
        body = _blob(yy, xx, 0.1, 0.0, 0.95, 0.8, 0.0, np.zeros((1, 2)), 0.05)
        lungs = sum(_blob(yy, xx, -0.05, sgn * 0.38, 0.6, 0.27, 0.0, np.zeros((1, 2)), 0.06) for sgn in (-1.0, 1.0))
        ribs = 0.06 * np.clip(np.sin(14 * yy + 3 * np.abs(xx)), 0, 1) * lungs
        img = 0.12 + 0.55 * body - 0.35 * lungs + ribs
        # appearance shift / group cue: soft-tissue (breast) shadows over the lower lungs; the shift alone also
        # lowers the exposure (and so the finding's contrast)
        breast = sum(_blob(yy, xx, 0.55, sgn * 0.4, 0.3, 0.35, 0.0, np.zeros((1, 2)), 0.15) for sgn in (-1.0, 1.0))
        img = img + 0.25 * (shift + cue) * breast
        # finding: an opacity inside one lung; its strength grows with the evidence
        side = rng.choice([-1.0, 1.0])
        amp = 0.3 * max(s + 0.35, 0.0)
        op = _blob(
            yy,
            xx,
            rng.uniform(-0.35, 0.3),
            side * 0.38 + rng.normal(0, 0.05),
            0.22,
            0.16,
            rng.uniform(0, np.pi),
            np.stack([rng.normal(0, 0.1, 3), rng.uniform(0, 6, 3)], 1),
            0.2,
        )
        if specific:  # interstitial-like: a diffuse reticular pattern over both lower lungs instead
            reticular = 0.5 * (1 + np.sin(22 * xx) * np.sin(22 * yy)) * np.clip((yy + 0.1) * 2.5, 0, 1)
            img = img + 0.6 * amp * reticular * lungs
        else:
            img = img + amp * op * lungs
        img = _acquire(img * (1.0 - 0.25 * shift), acquisition, xx, yy) + rng.normal(0, noise, img.shape)
        img = ndimage.gaussian_filter(img, 0.7)
        return (np.clip(img, 0, 1) * 4095).round().astype(np.uint16)
    raise ValueError(f"unknown classification modality {modality!r}; use 'dermoscopy' or 'xray'.")


def render_segmentation_image(
    modality: str,
    size: int,
    contrast: float,
    noise: float,
    shift: float,
    rng: np.random.Generator,
    *,
    cue: float = 0.0,
    specific: bool = False,
    acquisition: float = 0.0,
    location: float | None = None,
    distractor: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size)`` uint8 image and its binary uint8 mask (ultrasound lesion or fundus optic disc).

    Args:
        cue: a visible group cue that leaves the target's contrast unchanged (ultrasound: a bright near-field band;
            fundus: a darker background), ``shortcut`` / ``label_noise`` scenarios.
        specific: the target shows the group-specific appearance (ultrasound: hyperechoic; fundus: dark disc).
        acquisition: site-B scanner strength, see :func:`_acquire`.
        location: in [0, 1], forces the target's position (ultrasound: depth from top to bottom of its range;
            fundus: left disc below 0.5, right disc otherwise); ``None`` keeps the random position.
        distractor: ultrasound only: add a lesion-like but smooth, round cyst without posterior enhancement at the
            mirrored depth (not in the mask), so that where to look is informative (``shortcut`` scenario).
    """
    yy, xx = _grid(size)
    if modality == "ultrasound":
        sector = ((np.arctan2(xx, yy + 1.2) ** 2) < 0.45**2) & (np.hypot(xx, yy + 1.2) < 2.15)
        harm = np.stack([rng.normal(0, 0.08, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1)
        cy, cx = rng.uniform(-0.2, 0.35), rng.uniform(-0.3, 0.3)
        if location is not None:
            cy = -0.2 + 0.55 * float(location)
        ry, rx = rng.uniform(0.18, 0.35), rng.uniform(0.2, 0.42)
        soft = _blob(yy, xx, cy, cx, ry, rx, rng.uniform(-0.4, 0.4), harm, 0.02)
        mask = (soft > 0.5) & sector
        tissue = 0.55 + 0.1 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 3)
        below = ndimage.shift(soft, (size * ry * 0.6, 0), order=1) * (yy > cy)
        if specific:  # hyperechoic lesion with posterior shadowing
            img = tissue + 0.35 * contrast * soft - 0.1 * contrast * below
        else:  # hypoechoic lesion with posterior acoustic enhancement
            img = tissue - 0.4 * contrast * soft + 0.1 * contrast * below
        if distractor:  # drawn last, so the other images are unchanged when off
            dcy, dcx = 0.15 - cy + rng.normal(0, 0.03), -np.sign(cx) * rng.uniform(0.05, 0.3)
            rd = rng.uniform(0.15, 0.25)
            img = img - 0.4 * contrast * _blob(yy, xx, dcy, dcx, rd, rd, 0.0, np.zeros((1, 2)), 0.02)
        img = img + 0.5 * cue * np.exp(-(((yy + 0.75) / 0.25) ** 2))
        speckle = rng.rayleigh(1.0, (size, size)) / 1.25
        img = img * (1 + noise * (speckle - 1) * 2.0)
        img = _acquire(ndimage.gaussian_filter(img, 0.6) * (1.0 - 0.35 * shift), acquisition, xx, yy)
        img = np.where(sector, img, 0.0)
    elif modality == "fundus":
        retina = _blob(yy, xx, 0, 0, 0.95, 0.95, 0, np.zeros((1, 2)), 0.02)
        base = 0.55 * (1.0 - 0.4 * shift) - 0.2 * cue
        img = base + 0.08 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 4)
        cy, cx = rng.normal(0, 0.12), rng.choice([-0.4, 0.4]) + rng.normal(0, 0.05)
        if location is not None:
            cx = (0.4 if location >= 0.5 else -0.4) + (cx - np.sign(cx) * 0.4)
        rdisc = rng.uniform(0.16, 0.24)
        harm = np.stack([rng.normal(0, 0.04, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1)
        soft = _blob(yy, xx, cy, cx, rdisc * rng.uniform(0.9, 1.1), rdisc, 0.0, harm, 0.03)
        mask = soft > 0.5
        ang = np.arctan2(yy - cy, xx - cx)
        vessels = np.clip(np.cos(5 * ang + rng.uniform(0, 6)), 0.9, 1.0) - 0.9
        img = img + (-0.4 if specific else 0.6) * contrast * soft - 1.5 * vessels * (1 - soft)
        img = img + rng.normal(0, noise * 0.5, img.shape)
        img = _acquire(ndimage.gaussian_filter(img, 0.7), acquisition, xx, yy) * retina
    else:
        raise ValueError(f"unknown segmentation modality {modality!r}; use 'ultrasound' or 'fundus'.")
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), mask.astype(np.uint8)


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


def _coarse_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """A coarse annotation: the mask dilated by ``radius`` pixels (scaled to the image size, per 64 pixels)."""
    r = max(1, int(round(radius * mask.shape[0] / 64)))
    return ndimage.binary_dilation(mask, ndimage.generate_binary_structure(2, 1), iterations=r).astype(mask.dtype)


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
