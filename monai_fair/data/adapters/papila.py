# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""PAPILA (Kovalyk et al., Sci. Data 2022) -> monai-fair datalist.

Input: the release's ``ClinicalData/patient_data_od.xlsx`` and ``patient_data_os.xlsx`` (right and left eye),
or CSV exports of those sheets, and ``FundusImages/`` with ``RET<NNN>OD.jpg`` / ``RET<NNN>OS.jpg``.

Sheet layout reproduced here: title/header rows first (a row whose first cell is ``ID`` names the columns; a
further sub-header row may name the sub-columns of merged cells), then one row per patient whose first cell is
the id in the form ``#002``. The columns used are ``Age``, ``Gender`` (0 = male, 1 = female) and ``Diagnosis``
(0 = healthy, 1 = glaucoma, 2 = suspect), found by name (case-insensitive) in the header rows.

Verified: the file names, the ``#NNN`` ids, the two header rows before the data (public code reads the sheets with
``header=1`` and then drops one more row) and the ``RET{id:03d}{OD,OS}.jpg`` image names. The Gender and
Diagnosis codes follow the dataset paper as given in our issue; they could not be checked against the sheets
here (openpyxl is optional: ``.xlsx`` files need it, CSV exports do not).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import optional_import

from monai_fair.data.adapters._common import DEFAULT_AGE_BINS, demographic_spec, to_float
from monai_fair.data.records import build_fair_datalist

openpyxl, has_openpyxl = optional_import("openpyxl")

__all__ = ["papila_datalist", "read_papila_sheet"]

_ID = re.compile(r"^#?\s*(\d+)$")
GENDER = {0: "M", 1: "F"}
DIAGNOSIS = {0: "healthy", 1: "glaucoma", 2: "suspect"}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _raw_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"PAPILA clinical data not found: {path}")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        if not has_openpyxl:
            raise ImportError(f"reading {path} needs openpyxl (pip install openpyxl), or export the sheet to CSV.")
        wb = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
        try:
            return [[_cell(v) for v in row] for row in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [[_cell(v) for v in row] for row in csv.reader(f)]


def read_papila_sheet(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of one PAPILA clinical sheet: ``[{"patient": 2, "age": 39.0, "gender": 0, "diagnosis": 0, "line": 4}]``.

    Raises:
        KeyError: no ``ID`` header row, or no ``Age``/``Gender``/``Diagnosis`` column (message lists the header).
        ValueError: a non-numeric gender/diagnosis code (message names the file line and value).
    """
    path = Path(path)
    rows = _raw_rows(path)
    first_data = next((i for i, r in enumerate(rows) if r and _ID.match(r[0] or "")), None)
    header_at = next(
        (i for i, r in enumerate(rows[: first_data or len(rows)]) if r and r[0].lower() in ("id", "patient id")), None
    )
    if first_data is None or header_at is None:
        raise KeyError(f"{path}: no header row starting with 'ID' followed by rows with ids like '#002'.")
    width = max(len(r) for r in rows[header_at:first_data])
    names = [""] * width
    for r in rows[header_at:first_data]:  # the last non-empty header cell of each column names it
        for j, v in enumerate(r):
            if v:
                names[j] = v
    lower = [n.lower() for n in names]
    cols = {}
    for want in ("age", "gender", "diagnosis"):
        if want not in lower:
            raise KeyError(f"{path}: no {want.capitalize()!r} column in the header rows {names}.")
        cols[want] = lower.index(want)
    out = []
    for i in range(first_data, len(rows)):
        r = rows[i] + [""] * (width - len(rows[i]))
        m = _ID.match(r[0] or "")
        if not m:
            if any(r):
                raise ValueError(f"{path}: line {i + 1}: first cell {r[0]!r} is not a patient id like '#002'.")
            continue
        rec: dict[str, Any] = {"patient": int(m.group(1)), "age": to_float(r[cols["age"]]), "line": i + 1}
        for key, table in (("gender", GENDER), ("diagnosis", DIAGNOSIS)):
            v = to_float(r[cols[key]])
            if r[cols[key]] and (v is None or int(v) not in table):
                raise ValueError(f"{path}: line {i + 1}: {key.capitalize()} {r[cols[key]]!r} is not one of {table}.")
            rec[key] = None if v is None else int(v)
        out.append(rec)
    return out


def papila_datalist(
    clinical_od: str | os.PathLike,
    clinical_os: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    attribute: str = "sex",
    suspect: str = "exclude",
    unknown: str = "separate",
    age_bins: Sequence[float] = DEFAULT_AGE_BINS,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    check_images: bool = True,
) -> Path:
    """Build the datalist (one item per eye; both eyes of a patient stay in one split).

    Args:
        clinical_od / clinical_os: the right-eye and left-eye sheets (``.xlsx`` or CSV exports).
        images: ``FundusImages`` folder.
        out: datalist JSON to write.
        attribute: ``"sex"``, ``"age"`` or ``"sex_age"``.
        suspect: glaucoma suspects: ``"exclude"`` (default), ``"glaucoma"`` (label 1), ``"healthy"`` (label 0) or
            ``"class"`` (3 classes healthy/glaucoma/suspect).
        unknown: policy for a missing gender/age: ``"separate"`` (default), ``"error"`` or ``"drop"``.
    """
    if suspect not in ("exclude", "glaucoma", "healthy", "class"):
        raise ValueError(f"suspect must be exclude|glaucoma|healthy|class, got {suspect!r}.")
    images = Path(images)
    records = []
    for sheet, eye in ((clinical_od, "OD"), (clinical_os, "OS")):
        for r in read_papila_sheet(sheet):
            dx = r["diagnosis"]
            if dx is None:
                raise ValueError(f"{sheet}: line {r['line']}: empty Diagnosis.")
            if dx == 2 and suspect == "exclude":
                continue
            label = dx if suspect == "class" else (int(dx == 1 or (dx == 2 and suspect == "glaucoma")))
            image = images / f"RET{r['patient']:03d}{eye}.jpg"
            if check_images and not image.is_file():
                raise FileNotFoundError(f"{sheet}: line {r['line']}: image {image} not found.")
            records.append(
                {
                    "image": str(image.resolve()),
                    "label": label,
                    "patient_id": f"#{r['patient']:03d}",
                    "eye": eye,
                    "sex": GENDER.get(r["gender"]) if r["gender"] is not None else None,
                    "age": r["age"],
                }
            )
    return build_fair_datalist(
        records,
        out,
        demographic_spec(attribute, unknown, age_bins),
        keep_keys=["patient_id", "eye", "sex", "age"],
        split_fractions=split_fractions,
        seed=seed,
        label_names=["healthy", "glaucoma", "suspect"] if suspect == "class" else ["healthy", "glaucoma"],
        source=f"{clinical_od} + {clinical_os}",
        cluster=[r["patient_id"] for r in records],
        extra={"source": {"dataset": "PAPILA", "attribute": attribute, "suspect": suspect}},
    )
