# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""CheXpert (Irvin et al., AAAI 2019) -> monai-fair datalist.

Input: ``train.csv`` (and optionally ``valid.csv``) with the columns ``Path,Sex,Age,Frontal/Lateral,AP/PA``
followed by the 14 observations :data:`CHEXPERT_FINDINGS`. ``Path`` is relative to the folder that holds
``CheXpert-v1.0[-small]/`` (e.g. ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``); ``Sex`` is
``Male``/``Female``/``Unknown``; an observation is ``1.0`` (positive), ``0.0`` (negative), ``-1.0`` (uncertain)
or blank (not mentioned, read as negative: 0).

A single ``finding`` makes a binary task with the class names ``["no <finding>", "<finding>"]`` (two names for two
classes, so that inference can name its outputs); without ``finding`` the task is the 14-label multi-label one.

Uncertain labels (the policies of the CheXpert paper): ``"ones"`` (U-Ones: -1 -> 1), ``"zeros"`` (U-Zeros:
-1 -> 0) or ``"ignore"``: for a single ``finding`` the uncertain rows are left out; for the multi-label task the
-1 entries are kept as -1, to be masked by the loss.

Splits are by patient (``patientNNNNN`` in the path): no patient is in two splits. When ``valid_metadata`` is
given, ``valid.csv`` becomes the ``test`` split (the usual practice, the official test set being hidden) and
``train.csv`` is split into training/validation by ``val_fraction``.

Verified: the header (``Path,Sex,Age,Frontal/Lateral,AP/PA`` and the 14 names) and the value coding against
public code reading CheXpert-v1.0-small.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_fair.data.adapters._common import DEFAULT_AGE_BINS, demographic_spec, read_csv_rows, to_float
from monai_fair.data.records import build_fair_datalist
from monai_fair.data.splits import stratified_split

__all__ = ["CHEXPERT_FINDINGS", "chexpert_datalist"]

CHEXPERT_FINDINGS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + CHEXPERT_FINDINGS
_PATIENT = re.compile(r"(patient\d+)")


def _value(text: str, policy: str, where: str) -> float:
    v = to_float(text)
    if text and v is None:
        raise ValueError(f"{where}: {text!r} is not 1.0, 0.0, -1.0 or blank.")
    if v is None:
        return 0.0
    if v not in (1.0, 0.0, -1.0):
        raise ValueError(f"{where}: {text!r} is not 1.0, 0.0, -1.0 or blank.")
    if v == -1.0:
        return {"ones": 1.0, "zeros": 0.0, "ignore": -1.0}[policy]
    return v


def _records(
    path: str | os.PathLike, root: Path, finding: str | None, uncertain: str, frontal_only: bool, check_images: bool
) -> list[dict]:
    rows = read_csv_rows(path, COLUMNS)
    out = []
    for i, r in enumerate(rows):
        if frontal_only and r["Frontal/Lateral"].lower() != "frontal":
            continue
        where = f"{path}: row {i + 2}"
        if finding is not None:
            label = _value(r[finding], uncertain, f"{where} ({finding})")
            if label == -1.0:
                continue
            label = int(label)
        else:
            label = [_value(r[f], uncertain, f"{where} ({f})") for f in CHEXPERT_FINDINGS]
        m = _PATIENT.search(r["Path"])
        image = str((root / r["Path"]).resolve())
        if check_images and not os.path.exists(image):
            raise FileNotFoundError(f"{where}: image {image} not found (is --root the folder holding CheXpert-v1.0*?)")
        out.append(
            {
                "image": image,
                "label": label,
                "patient_id": m.group(1) if m else r["Path"],
                "sex": r["Sex"],
                "age": to_float(r["Age"]),
                "view": r["Frontal/Lateral"],
                "ap_pa": r["AP/PA"] or None,
                "_row": i + 2,
                "_file": str(path),
            }
        )
    return out


def chexpert_datalist(
    metadata: str | os.PathLike,
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    valid_metadata: str | os.PathLike | None = None,
    finding: str | None = None,
    uncertain: str = "ones",
    frontal_only: bool = True,
    attribute: str = "sex",
    unknown: str = "separate",
    age_bins: Sequence[float] = DEFAULT_AGE_BINS,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    val_fraction: float = 0.1,
    seed: int = 0,
    check_images: bool = True,
) -> Path:
    """Build the datalist.

    Args:
        metadata: ``train.csv``.
        root: folder the ``Path`` column is relative to.
        out: datalist JSON to write.
        valid_metadata: ``valid.csv``; becomes the test split.
        finding: one of :data:`CHEXPERT_FINDINGS` for a binary task; ``None``: 14-label multi-label task.
        uncertain: ``"ones"``, ``"zeros"`` or ``"ignore"`` (see the module docstring).
        frontal_only: keep frontal views only.
        attribute: ``"sex"``, ``"age"`` or ``"sex_age"``; unknown: policy for ``Unknown`` sex / missing age:
            ``"separate"`` (default, an ``unknown`` group), ``"error"`` or ``"drop"``.
    """
    if finding is not None and finding not in CHEXPERT_FINDINGS:
        raise ValueError(f"finding {finding!r} is not one of {CHEXPERT_FINDINGS}.")
    if uncertain not in ("ones", "zeros", "ignore"):
        raise ValueError(f"uncertain must be 'ones', 'zeros' or 'ignore', got {uncertain!r}.")
    root = Path(root)
    spec = demographic_spec(attribute, unknown, age_bins)
    train = _records(metadata, root, finding, uncertain, frontal_only, check_images)
    test = _records(valid_metadata, root, finding, uncertain, frontal_only, check_images) if valid_metadata else []
    for part, src in ((train, metadata), (test, valid_metadata)):
        if part:  # validate per file so that errors give that file's own line numbers
            _check(spec, part, src)
    records = train + test
    split = None
    cluster = [r["patient_id"] for r in records]
    if valid_metadata is not None:
        patients = np.asarray([r["patient_id"] for r in train])
        uniq, first, inv = np.unique(patients, return_index=True, return_inverse=True)
        strata = np.asarray([str(train[i]["sex"]) for i in first])
        sp = stratified_split(strata, (1.0 - val_fraction, val_fraction, 0.0), seed)[inv.reshape(-1)]
        split = [("training", "validation")[int(s)] for s in sp] + ["test"] * len(test)
    for r in records:
        r.pop("_row")
        r.pop("_file")
    return build_fair_datalist(
        records,
        out,
        spec,
        keep_keys=["patient_id", "sex", "age", "view", "ap_pa"],
        split=split,
        split_fractions=split_fractions,
        seed=seed,
        stratify_by_label=finding is not None,
        label_names=[f"no {finding}", finding] if finding else list(CHEXPERT_FINDINGS),
        source=str(metadata),
        cluster=cluster,
        extra={
            "source": {
                "dataset": "CheXpert",
                "file": Path(metadata).name,
                "finding": finding,
                "uncertain": uncertain,
                "frontal_only": frontal_only,
                "attribute": attribute,
            }
        },
    )


def _check(spec, part: list[dict], src) -> None:
    try:
        spec.encode(part)
    except ValueError as e:
        # translate record indices into the CSV's line numbers
        msg = re.sub(r"row (\d+)", lambda m: f"line {part[int(m.group(1))]['_row']}", str(e))
        raise ValueError(f"{src}: {msg}") from e
