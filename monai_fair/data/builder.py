# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The one door for a user's data: a table or a DICOM folder -> a checked monai-fair datalist.

Used by ``python -m monai_fair datalist`` (:mod:`monai_fair.data.cli`):

* :func:`datalist_from_table` - a CSV with an image column (NIfTI, DICOM file or series folder, PNG/JPEG),
  a label column (or a mask column for segmentation) and attribute columns;
* :func:`datalist_from_dicom_headers` - a folder of DICOM files and a labels CSV naming each file relative to the
  folder (or by its SOPInstanceUID); the attributes come from the headers only (:data:`DICOM_ATTRIBUTES`);
* :func:`attribute_spec` - the group spec both build from ``--attributes sex,age --age-bins 0,40,60``;
* :func:`format_split_counts` - the per-split x per-group x per-label table the command prints, with cells
  below ``min_group_size`` suppressed (and a second cell per split, so that the split total does not reveal it).

Both builders fail before writing anything, listing every offender at once: missing or unreadable images, labels
that are text without ``positive_label``/``label_order``, splits that would be empty or lack a group.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_fair.data.datalist import (
    SPLIT_KEYS,
    _read_stripped_csv,
    _stem,
    build_fair_datalist,
    datalist_from_csv,
    encode_labels,
)
from monai_fair.data.groups import GroupSpec
from monai_fair.data.image_info import read_image_info

__all__ = [
    "DICOM_ATTRIBUTES",
    "SEX_ALIASES",
    "attribute_spec",
    "check_image_files",
    "datalist_from_table",
    "datalist_from_dicom_headers",
    "format_split_counts",
]

#: attribute name -> DICOM keyword(s) it is read from (``age``: PatientAge, else StudyDate - PatientBirthDate)
DICOM_ATTRIBUTES: dict[str, str] = {
    "sex": "PatientSex",
    "age": "PatientAge | StudyDate - PatientBirthDate",
    "ethnic_group": "EthnicGroup",
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "institution": "InstitutionName",
}
SEX_ALIASES = {"female": "F", "male": "M", "f": "F", "m": "M", "woman": "F", "man": "M", "other": "O", "o": "O"}


def attribute_spec(
    attributes: Sequence[str],
    age_bins: Sequence[float] | None = None,
    unknown: str = "separate",
    age_attribute: str = "age",
) -> GroupSpec:
    """The group spec over ``attributes`` (their intersection when several).

    ``age_attribute`` is cut at ``age_bins`` (edges; an open last bin ``>= last edge`` is added, so
    ``0,40,60`` gives ``0-40``, ``40-60``, ``>=60``); ``sex`` is categorical with the usual spellings mapped to
    ``F``/``M``/``O``; any other attribute is categorical with its categories read from the data (case and
    surrounding spaces ignored). ``unknown``: ``"separate"`` (missing values form an ``unknown`` group),
    ``"drop"`` or ``"error"``.
    """
    attrs = [a.strip() for a in attributes if a.strip()]
    if not attrs:
        raise ValueError("give at least one attribute (e.g. --attributes sex).")
    specs = []
    for a in attrs:
        if a == age_attribute:
            if not age_bins:
                raise ValueError(f"attribute {a!r} is continuous: give its bins (e.g. --age-bins 0,40,60).")
            edges = [float(e) for e in age_bins]
            if math.isfinite(edges[-1]):
                edges.append(math.inf)
            specs.append(GroupSpec.binned(a, edges, unknown=unknown))
        elif a == "sex":
            specs.append(GroupSpec.categorical(a, None, aliases=SEX_ALIASES, unknown=unknown))
        else:
            specs.append(GroupSpec.categorical(a, None, unknown=unknown))
    return specs[0] if len(specs) == 1 else GroupSpec.intersection(*specs, unknown=unknown)


def check_image_files(paths: Sequence[tuple[str, str]], source: str) -> None:
    """Raise one ``ValueError`` listing every ``(where, path)`` whose file is missing, unreadable or truncated."""
    bad = []
    for where, p in paths:
        info = read_image_info(p)
        if not info.ok:
            bad.append(f"{where}: {p}: {info.error}")
    if bad:
        raise ValueError(f"{source}: {len(bad)} image file(s) missing or unreadable:\n  " + "\n  ".join(bad))


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    return _read_stripped_csv(path, blank_missing=True)


def _need(header: Sequence[str], cols: Sequence[str | None], path: Path) -> None:
    missing = [c for c in cols if c and c not in header]
    if missing:
        raise KeyError(f"{path}: column(s) {missing} not in the header {list(header)}.")


def datalist_from_table(
    table: str | os.PathLike,
    out: str | os.PathLike,
    *,
    image_col: str,
    attributes: Sequence[str],
    label_col: str | None = None,
    mask_col: str | None = None,
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    age_bins: Sequence[float] | None = None,
    unknown: str = "separate",
    patient_col: str | None = None,
    split_col: str | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    image_dir: str | os.PathLike | None = None,
) -> Path:
    """Build a datalist from a CSV table (one row per image); see the module docstring.

    Args:
        table: the CSV (header in the first line).
        out: the datalist JSON to write.
        image_col: image path column (relative to ``image_dir``, default the table's folder).
        attributes: attribute columns the groups are built from (:func:`attribute_spec`).
        label_col: classification label column; ``mask_col``: segmentation mask path column (one of them).
        positive_label / label_order: meaning of text labels (:func:`monai_fair.data.encode_labels`).
        age_bins, unknown: see :func:`attribute_spec`.
        patient_col: patient id column (a patient's images stay in one split; kept as metadata ``patient_id``).
        split_col: column with train/val/test (kept as given); otherwise a seeded split by ``split_fractions``,
            stratified by group and label, grouped by patient.
        seed: seed of the split.
        image_dir: folder the image paths are relative to.

    Raises:
        KeyError / ValueError / FileNotFoundError: listing every offending column, row, file or split.
    """
    path = Path(table)
    if (label_col is None) == (mask_col is None):
        raise ValueError("give either a label column (classification) or a mask column (segmentation).")
    header, rows = _read_table(path)
    _need(header, [image_col, label_col, mask_col, patient_col, split_col, *attributes], path)
    base = Path(image_dir) if image_dir is not None else path.parent
    files = []
    for i, r in enumerate(rows):
        for col in (image_col, mask_col):
            if col:
                v = r[col]
                files.append((f"row {i + 2} ({col})", str(base / v) if v and not os.path.isabs(v) else v))
    check_image_files(files, str(path))
    return datalist_from_csv(
        path,
        out,
        image_col=image_col,
        label_col=label_col or mask_col,  # type: ignore[arg-type]
        group_spec=attribute_spec(attributes, age_bins, unknown),
        attribute_cols=list(attributes),
        image_dir=base,
        label_is_path=mask_col is not None,
        positive_label=positive_label,
        label_order=label_order,
        split_col=split_col,
        patient_col=patient_col,
        split_fractions=split_fractions,
        seed=seed,
    )


def _sop_index(root: Path) -> dict[str, Path]:
    """SOPInstanceUID -> file for every DICOM file under ``root`` (headers read up to that tag)."""
    import pydicom

    index = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            try:
                ds = pydicom.dcmread(str(p), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            except Exception:  # not DICOM: not indexed
                continue
            uid = str(getattr(ds, "SOPInstanceUID", "") or "")
            if uid:
                index[uid] = p
    return index


def datalist_from_dicom_headers(
    dicom_dir: str | os.PathLike,
    labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    image_col: str,
    attributes: Sequence[str],
    label_col: str | None = None,
    mask_col: str | None = None,
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    age_bins: Sequence[float] | None = None,
    unknown: str = "separate",
    split_col: str | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Path:
    """Build a datalist from DICOM files whose demographics exist only in their headers.

    Args:
        dicom_dir: the DICOM folder.
        labels: CSV with ``image_col`` (a file or series folder relative to ``dicom_dir``, or a SOPInstanceUID)
            and ``label_col`` (or ``mask_col``, a mask path relative to the CSV's folder); any attribute columns
            in it are ignored: attributes come from the headers.
        out: the datalist JSON to write.
        attributes: names from :data:`DICOM_ATTRIBUTES` (``sex``, ``age``, ``ethnic_group``, ``manufacturer``,
            ``model``, ``institution``). ``PatientID`` becomes the metadata ``patient_id`` and groups a patient's
            images in one split.
        positive_label, label_order, age_bins, unknown, split_col, split_fractions, seed: as
            :func:`datalist_from_table`.

    Raises:
        KeyError / ValueError / FileNotFoundError: listing every unknown attribute, missing or unreadable file
            and malformed header value at once.
    """
    root, lpath = Path(dicom_dir), Path(labels)
    _check_dicom_arguments(root, attributes, label_col, mask_col)
    header, rows = _read_table(lpath)
    _need(header, [image_col, label_col, mask_col, split_col], lpath)
    records = _dicom_records(rows, root, lpath, image_col, attributes, label_col, mask_col, split_col)
    names = _encode_dicom_labels(records, lpath, positive_label, label_order) if label_col else None
    return build_fair_datalist(
        records,
        out,
        attribute_spec(attributes, age_bins, unknown),
        keep_keys=[*attributes, "patient_id"],
        split=[r.pop("_split") for r in records] if split_col else None,
        split_fractions=split_fractions,
        seed=seed,
        label_names=names,
        row_offset=2,
        source=str(lpath),
        cluster=[r["patient_id"] for r in records],
        cluster_key="patient_id",
        case_id_key="case_id",
        mask=mask_col is not None,
        extra={"source": {"type": "dicom", "labels": lpath.name, "tags": {a: DICOM_ATTRIBUTES[a] for a in attributes}}},
    )


def _check_dicom_arguments(root: Path, attributes: Sequence[str], label_col: str | None, mask_col: str | None) -> None:
    """Raise on a missing DICOM folder, an unknown attribute, or not exactly one of label and mask column."""
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder not found: {root}")
    unknown_attrs = [a for a in attributes if a not in DICOM_ATTRIBUTES]
    if unknown_attrs:
        raise ValueError(f"DICOM attribute(s) {unknown_attrs} unknown; choose from {sorted(DICOM_ATTRIBUTES)}.")
    if (label_col is None) == (mask_col is None):
        raise ValueError("give either a label column (classification) or a mask column (segmentation).")


def _dicom_records(
    rows: Sequence[Mapping[str, str]],
    root: Path,
    lpath: Path,
    image_col: str,
    attributes: Sequence[str],
    label_col: str | None,
    mask_col: str | None,
    split_col: str | None,
) -> list[dict[str, Any]]:
    """One record per labels row (raw label, header attributes, ``_split``); one ``ValueError`` lists all problems."""
    index: dict[str, Path] | None = None
    records, problems = [], []
    for i, r in enumerate(rows):
        where = f"{lpath} row {i + 2}"
        ref = r[image_col]
        p = root / ref if ref else None
        if p is None or not p.exists():
            index = _sop_index(root) if index is None else index
            p = index.get(ref)
        if p is None:
            problems.append(f"{where}: {ref!r} is neither a file under {root} nor a SOPInstanceUID found there")
            continue
        rec, problem = _dicom_record(p, r, i, where, lpath, attributes, label_col, mask_col, split_col)
        if rec is None:
            problems.append(problem)
            continue
        rec["case_id"] = _stem(ref)
        records.append(rec)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in {lpath} / {root}:\n  " + "\n  ".join(problems))
    return records


def _dicom_record(
    p: Path,
    r: Mapping[str, str],
    i: int,
    where: str,
    lpath: Path,
    attributes: Sequence[str],
    label_col: str | None,
    mask_col: str | None,
    split_col: str | None,
) -> tuple[dict[str, Any] | None, str]:
    """The record of labels row ``i`` whose image is ``p``, or ``(None, problem)`` when it cannot be read."""
    from monai_fair.data.dicom import read_dicom_demographics

    info = read_image_info(p)
    if not info.ok:
        return None, f"{where}: {p}: {info.error}"
    first = p if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())[0]
    try:
        demo = read_dicom_demographics(first)
    except ValueError as e:
        return None, f"{where}: {e}"
    rec: dict[str, Any] = {a: demo[a] for a in attributes}
    rec["image"] = str(p.resolve())
    rec["patient_id"] = demo.get("patient_id") or f"row{i + 2}"
    if mask_col:
        m = lpath.parent / r[mask_col] if r[mask_col] else None
        mi = read_image_info(m) if m is not None else None
        if mi is None or not mi.ok:
            return None, f"{where}: mask {m}: {mi.error if mi else 'empty'}"
        rec["label"] = str(m.resolve())  # type: ignore[union-attr]
    else:
        rec["label"] = r[label_col]  # type: ignore[index]
    rec["_split"] = r[split_col] if split_col else None
    return rec, ""


def _encode_dicom_labels(
    records: list[dict[str, Any]], lpath: Path, positive_label: str | None, label_order: Sequence[str] | None
) -> list[str] | None:
    """Encode the records' classification labels in place; return the label names."""
    labs, names = encode_labels(
        [r["label"] for r in records],
        positive_label=positive_label,
        label_order=label_order,
        source=str(lpath),
        row_offset=2,
    )
    for r, lab in zip(records, labs):
        r["label"] = lab
    return names


def format_split_counts(datalist: str | os.PathLike, min_group_size: int = 10) -> str:
    """Per split x group x label counts as a text table for the terminal.

    Counts in ``1..min_group_size-1`` are shown as ``<min_group_size``. No margin is printed that would let a
    suppressed cell be recovered: a split's total is shown only when none of its cells is suppressed.
    """
    data: Mapping[str, Any] = json.loads(Path(datalist).read_text())
    names = [str(n) for n in data.get("group_names", [])]
    seg = data.get("task") == "segmentation"
    label_names = [str(n) for n in data.get("label_names") or []]
    counts: dict[str, Counter] = {}
    labels: set[Any] = set()
    for s in SPLIT_KEYS:
        c: Counter = Counter()
        for it in data.get(s) or []:
            lab = "cases" if seg or isinstance(it.get("label"), list) else it.get("label")
            c[(int(it["group"]), lab)] += 1
            labels.add(lab)
        counts[s] = c
    cols = sorted(labels, key=str)

    def col_name(v: Any) -> str:
        if isinstance(v, int) and 0 <= v < len(label_names):
            return f"{v}:{label_names[v]}"
        return str(v)

    k = max(int(min_group_size), 1)
    width = max([len(n) for n in names] + [5]) + 2
    head = f"{'split':<11}{'group':<{width}}" + "".join(f"{col_name(c):>14}" for c in cols) + f"{'split total':>14}"
    lines = [head]
    for s in SPLIT_KEYS:
        cells = [[counts[s].get((g, lab), 0) for lab in cols] for g in range(len(names))]
        small = any(0 < n < k for row in cells for n in row)
        total = "suppressed" if small else str(sum(counts[s].values()))
        for g, name in enumerate(names):
            row = "".join(f"{(f'<{k}' if 0 < n < k else str(n)):>14}" for n in cells[g])
            lines.append(f"{s:<11}{name:<{width}}{row}" + (f"{total:>14}" if g == 0 else ""))
    if k > 1:
        lines.append(f"(cells of 1..{k - 1} cases are shown as <{k}: --min-group-size)")
    return "\n".join(lines)
