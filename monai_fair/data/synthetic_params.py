# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The parameters of the synthetic data: defaults per task, the bias scenarios and their strength, and the
normalisation of user-given per-group values (see :mod:`monai_fair.data.synthetic` for what each mechanism does)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from monai.utils import look_up_option

__all__ = ["CLASSIFICATION_DEFAULTS", "SEGMENTATION_DEFAULTS", "SCENARIOS", "scenario_parameters"]


GROUP_NAMES = ("F", "M")
ATTRIBUTE_GROUPS = {"sex": GROUP_NAMES, "site": ("site_B", "site_A")}


SCENARIOS = ("irreducible", "underrep", "shortcut", "label_noise", "acquisition")


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
    "specific_strength": 1.0,
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
        if cls:  # rarer and fainter: at 15 % and full salience ERM learnt the minority's own appearance (no deficit)
            out.update(group_proportions=(0.07, 0.93), specific_strength=0.15)
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
    if "specific_strength" in p and not 0.0 <= float(p["specific_strength"]) <= 1.0:
        raise ValueError(f"specific_strength must be in [0, 1], got {p['specific_strength']!r}.")
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
