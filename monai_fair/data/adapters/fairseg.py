# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Harvard-FairSeg (Tian et al., ICLR 2024) -> NIfTI images/masks + monai-fair segmentation datalist.

Input: ``data_XXXXX.npz`` files (searched recursively; a parent folder named ``Training``/``train`` or
``Test``/``test`` sets the split, otherwise a seeded split). Keys, as documented in the dataset README:

* ``slo_fundus``: the SLO fundus image; ``disc_cup_mask``: 0 background, -1 neuroretinal rim (disc without cup),
  -2 cup (the reference training code maps ``{-1: 1, -2: 2}``). The spellings ``fundus_slo`` / ``disc_cup`` used by
  the reference code are accepted too.
* ``age`` (years; values above 150 are taken as days and divided by 365, as the reference code does),
  ``gender`` 0 Female / 1 Male, ``race`` 0 Asian / 1 Black / 2 White, ``ethnicity`` 0 Non-Hispanic / 1 Hispanic,
  ``language`` 0 English / 1 Spanish / 2 Others, ``maritalstatus`` 0 Married or Partnered / 1 Single /
  2 Divorced / 3 Widowed / 4 Legally Separated; ``-1`` is Unknown (handled by the ``unknown`` policy).

Verified: keys and codes against the Harvard-FairSeg README and ``TransUNet/datasets/dataset_fairseg.py``.
Files are opened with ``allow_pickle=False`` (a pickled npz could run code); pass ``allow_pickle=True`` only for
files you trust.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.data.groups import GroupSpec
from monai_fair.data.records import build_fair_datalist
from monai_fair.data.synthetic import write_nifti

__all__ = ["FAIRSEG_CODES", "fairseg_datalist"]

FAIRSEG_CODES: dict[str, dict[int, str]] = {
    "gender": {0: "Female", 1: "Male"},
    "race": {0: "Asian", 1: "Black", 2: "White"},
    "ethnicity": {0: "Non-Hispanic", 1: "Hispanic"},
    "language": {0: "English", 1: "Spanish", 2: "Others"},
    "maritalstatus": {0: "Married or Partnered", 1: "Single", 2: "Divorced", 3: "Widowed", 4: "Legally Separated"},
}
_IMAGE_KEYS = ("slo_fundus", "fundus_slo")
_MASK_KEYS = ("disc_cup_mask", "disc_cup")
_SPLIT_DIRS = {
    "training": "training",
    "train": "training",
    "validation": "validation",
    "val": "validation",
    "test": "test",
    "testing": "test",
}


def _get(data: Any, keys: Sequence[str], path: Path) -> np.ndarray:
    for k in keys:
        if k in data.files:
            return np.asarray(data[k])
    raise KeyError(f"{path}: none of the keys {list(keys)} (has {sorted(data.files)}).")


def _mask(raw: np.ndarray, mode: str, path: Path) -> np.ndarray:
    values = np.unique(raw)
    bad = values[~np.isin(values, (0, -1, -2))]
    if bad.size:
        raise ValueError(f"{path}: disc_cup_mask holds values {bad.tolist()}; expected 0, -1 (rim), -2 (cup).")
    if mode == "cup":
        return (raw == -2).astype(np.uint8)
    if mode == "disc":
        return (raw != 0).astype(np.uint8)
    return np.where(raw == -2, 2, np.where(raw == -1, 1, 0)).astype(np.uint8)


def fairseg_datalist(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    attribute: str = "race",
    mask: str = "rim_cup",
    image_out: str | os.PathLike | None = None,
    unknown: str = "separate",
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    allow_pickle: bool = False,
) -> Path:
    """Convert the npz files and build the datalist.

    Args:
        data_dir: folder with the ``.npz`` files (recursively).
        out: datalist JSON to write.
        attribute: group attribute: ``race``, ``gender``, ``ethnicity``, ``language`` or ``maritalstatus``.
        mask: ``"rim_cup"`` (0 background, 1 rim, 2 cup: the reference training labels), ``"disc"`` (rim + cup,
            binary) or ``"cup"`` (binary).
        image_out: where the NIfTI files go (default ``<out folder>/fairseg_nifti``), as
            ``images/<name>.nii.gz`` and ``masks/<name>.nii.gz``.
        unknown: policy for ``-1`` (Unknown) values of the group attribute: ``"separate"`` (default), ``"error"``
            or ``"drop"``.
    """
    if attribute not in FAIRSEG_CODES:
        raise ValueError(f"attribute must be one of {sorted(FAIRSEG_CODES)}, got {attribute!r}.")
    if mask not in ("rim_cup", "disc", "cup"):
        raise ValueError(f"mask must be 'rim_cup', 'disc' or 'cup', got {mask!r}.")
    data_dir = Path(data_dir)
    files = sorted(data_dir.rglob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no .npz files under {data_dir}.")
    out = Path(out)
    image_out = Path(image_out) if image_out is not None else out.parent / "fairseg_nifti"
    records, split = [], []
    for f in files:
        try:
            data = np.load(f, allow_pickle=allow_pickle)
        except Exception as e:  # corrupt zip, pickled arrays, ...
            raise ValueError(f"cannot read {f}: {type(e).__name__}: {e}") from e
        with data:
            image = _get(data, _IMAGE_KEYS, f)
            seg = _mask(_get(data, _MASK_KEYS, f), mask, f)
            if image.shape[:2] != seg.shape[:2]:
                raise ValueError(f"{f}: image shape {image.shape} and mask shape {seg.shape} differ.")
            attrs: dict[str, Any] = {}
            for key, codes in FAIRSEG_CODES.items():
                if key not in data.files:
                    attrs[key] = None
                    continue
                code = int(np.asarray(data[key]).reshape(-1)[0])
                if code != -1 and code not in codes:
                    raise ValueError(f"{f}: {key}={code} is not one of {codes} or -1 (Unknown).")
                attrs[key] = codes.get(code)
            age = float(np.asarray(data["age"]).reshape(-1)[0]) if "age" in data.files else None
        if age is not None and age > 150:
            age = age / 365.0
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        rel = f.relative_to(data_dir)
        name = "_".join(rel.with_suffix("").parts)
        img_path = write_nifti(image_out / "images" / f"{name}.nii.gz", image)
        mask_path = write_nifti(image_out / "masks" / f"{name}.nii.gz", seg)
        records.append(
            {"image": str(img_path.resolve()), "label": str(mask_path.resolve()), "npz": str(rel), "age": age, **attrs}
        )
        split.append(next((_SPLIT_DIRS[p.lower()] for p in rel.parts[:-1] if p.lower() in _SPLIT_DIRS), None))
    use_dirs = all(s is not None for s in split)
    spec = GroupSpec.categorical(attribute, list(FAIRSEG_CODES[attribute].values()), unknown=unknown)
    return build_fair_datalist(
        records,
        out,
        spec,
        keep_keys=["npz", "age"] + list(FAIRSEG_CODES),
        split=split if use_dirs else None,
        split_fractions=split_fractions,
        seed=seed,
        stratify_by_label=False,
        label_names=["background", "rim", "cup"] if mask == "rim_cup" else ["background", mask],
        source=str(data_dir),
        extra={"source": {"dataset": "Harvard-FairSeg", "attribute": attribute, "mask": mask}},
    )
