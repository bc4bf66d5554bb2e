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

from monai_fair.data.datalist import SPLIT_KEYS, _read_stripped_csv, _stem
from monai_fair.data.dicom import plausible_age
from monai_fair.data.groups import DEFAULT_UNKNOWN_VALUES, UNKNOWN_GROUP_NAME, GroupSpec, is_missing_value
from monai_fair.data.image_info import read_image_info
from monai_fair.data.labels import encode_labels
from monai_fair.data.records import build_fair_datalist

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
SEX_ALIASES = {"female": "F", "male": "M", "f": "F", "m": "M", "woman": "F", "man": "M"}
#: sex values read as missing (besides the usual blanks): DICOM's ``O`` (other) and the non-standard ``U``
SEX_UNKNOWN_VALUES = ("u", "o", "other")


def attribute_spec(
    attributes: Sequence[str],
    age_bins: Sequence[float] | None = None,
    unknown: str = "separate",
    age_attribute: str = "age",
) -> GroupSpec:
    """The group spec over ``attributes`` (their intersection when several).

    ``age_attribute`` is cut at ``age_bins`` (edges; an open last bin ``>= last edge`` is added, so
    ``0,40,60`` gives ``0-40``, ``40-60``, ``>=60``); ``sex`` is categorical with the usual spellings mapped to
    ``F``/``M``, and ``U``/``O``/``other`` read as missing (:data:`SEX_UNKNOWN_VALUES`: too rare to form a group
    that can be reported; they follow ``unknown``); any other attribute is categorical with its categories read
    from the data (case and surrounding spaces ignored). ``unknown``: ``"separate"`` (missing values form an
    ``unknown`` group), ``"drop"`` or ``"error"``.
    """
    attrs = [a.strip() for a in attributes if a.strip()]
    if not attrs:
        raise ValueError("give at least one attribute (e.g. --attributes sex).")
    specs = []
    missing = DEFAULT_UNKNOWN_VALUES + (SEX_UNKNOWN_VALUES if "sex" in attrs else ())
    for a in attrs:
        if a == age_attribute:
            if not age_bins:
                raise ValueError(f"attribute {a!r} is continuous: give its bins (e.g. --age-bins 0,40,60).")
            edges = [float(e) for e in age_bins]
            if math.isfinite(edges[-1]):
                edges.append(math.inf)
            specs.append(GroupSpec.binned(a, edges, unknown=unknown, unknown_values=missing))
        elif a == "sex":
            specs.append(GroupSpec.categorical(a, None, aliases=SEX_ALIASES, unknown=unknown, unknown_values=missing))
        else:
            specs.append(GroupSpec.categorical(a, None, unknown=unknown, unknown_values=missing))
    return specs[0] if len(specs) == 1 else GroupSpec.intersection(*specs, unknown=unknown, unknown_values=missing)


def check_image_files(paths: Sequence[tuple[str, str]], source: str) -> None:
    """Raise one ``ValueError`` listing every ``(where, path)`` whose file is missing, unreadable or truncated."""
    bad = []
    for where, p in paths:
        info = read_image_info(p)
        if not info.ok:
            bad.append(f"{where}: {p}: {info.error}")
    if bad:
        raise ValueError(f"{source}: {len(bad)} image file(s) missing or unreadable:\n  " + "\n  ".join(bad))


def _read_table(path: Path, delimiter: str = ",") -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    return _read_stripped_csv(path, blank_missing=True, delimiter=delimiter)


def _need(header: Sequence[str], cols: Sequence[str | None], path: Path) -> None:
    missing = [c for c in dict.fromkeys(cols) if c and c not in header]
    if missing:
        raise KeyError(f"{path}: column(s) {missing} not in the header {list(header)}.")


def _abs_path(value: str, base: Path, suffix: str = "") -> str:
    value = value.strip() + suffix
    return value if os.path.isabs(value) else str((base / value).resolve())


def _age_policy(records: list[dict[str, Any]], age_attribute: str, row_offset: int) -> None:
    """Ages outside ``0..120`` become missing, with the reason in the record's ``notes`` (never a silent bin)."""
    for r in records:
        v = r.get(age_attribute)
        if isinstance(v, float):
            r[age_attribute], note = plausible_age(v, f"column {age_attribute!r}")
            if note:
                r.setdefault("notes", {})[age_attribute] = note


def datalist_from_table(
    table: str | os.PathLike,
    out: str | os.PathLike,
    *,
    image_col: str,
    attributes: Sequence[str] | None = None,
    group_spec: GroupSpec | None = None,
    label_col: str | None = None,
    mask_col: str | None = None,
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    label_map: Mapping[str, int] | None = None,
    label_names: Sequence[str] | None = None,
    age_bins: Sequence[float] | None = None,
    unknown: str = "separate",
    attribute_cols: Sequence[str] | None = None,
    patient_col: str | None = None,
    split_col: str | None = None,
    allow_patient_overlap: bool = False,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    image_dir: str | os.PathLike | None = None,
    image_suffix: str = "",
    check_images: bool = True,
    max_groups: int | None = None,
    delimiter: str = ",",
) -> Path:
    """Build a datalist from a CSV table (one row per image): monai-fair's one table-to-datalist builder.

    Args:
        table: the CSV (header in the first line).
        out: the datalist JSON to write (paths are stored relative to its folder).
        image_col: image path column (relative to ``image_dir``, default the table's folder).
        attributes: attribute columns the groups are built from (:func:`attribute_spec`); or give ``group_spec``.
        group_spec: an explicit :class:`~monai_fair.data.GroupSpec` instead of ``attributes``/``age_bins``/``unknown``.
        label_col: classification label column; ``mask_col``: segmentation mask path column (one of them).
        positive_label / label_order / label_map: meaning of text labels (:func:`monai_fair.data.encode_labels`;
            text labels without one of them are an error, never ordered alphabetically); ``label_names``: written
            as they are (default: from the encoding).
        age_bins, unknown: see :func:`attribute_spec`. An ``age`` outside ``0..120`` is missing (note kept).
        attribute_cols: raw attribute columns kept in the metadata (default: the group attributes).
        patient_col: patient id column (a patient's images stay in one split; kept as metadata ``patient_id``).
        split_col: column with train/val/test (kept as given); otherwise a seeded split by ``split_fractions``,
            stratified by group and label, grouped by patient.
        allow_patient_overlap: with ``split_col`` and ``patient_col``, accept a patient in two splits (recorded as
            ``patient_overlap``); default: an error naming the patients.
        seed: seed of the split.
        image_dir, image_suffix: folder the image paths are relative to; suffix appended (a table of ids).
        check_images: every image (and mask) must be a readable, complete file (one error lists all).
        max_groups: refuse more non-empty groups than this (see :func:`~monai_fair.data.build_fair_datalist`).
        delimiter: the CSV delimiter.

    Raises:
        KeyError / ValueError / FileNotFoundError: listing every offending column, row, file or split.
    """
    path = Path(table)
    if (label_col is None) == (mask_col is None):
        raise ValueError("give either a label column (classification) or a mask column (segmentation).")
    if (attributes is None) == (group_spec is None):
        raise ValueError("give either attributes (e.g. ['sex', 'age']) or a group_spec.")
    spec = group_spec if group_spec is not None else attribute_spec(attributes, age_bins, unknown)  # type: ignore
    attrs = list(attribute_cols) if attribute_cols is not None else spec.attribute_names
    header, rows = _read_table(path, delimiter)
    _need(header, [image_col, label_col, mask_col, patient_col, split_col, *attrs, *spec.attribute_names], path)
    base = Path(image_dir) if image_dir is not None else path.parent
    if check_images:
        files = [
            (
                f"row {i + 2} ({col})",
                _abs_path(r[col], base, image_suffix if col == image_col else "") if r[col] else "",
            )
            for i, r in enumerate(rows)
            for col in (image_col, mask_col)
            if col
        ]
        check_image_files(files, str(path))
    if mask_col:
        labels, names = [r[mask_col] for r in rows], None
    else:
        labels, names = encode_labels(
            [r[label_col] for r in rows],  # type: ignore[index]
            positive_label=positive_label,
            label_order=label_order,
            label_map=label_map,
            source=str(path),
            row_offset=2,
        )
    binned = {a.name for a in spec.attributes if a.is_binned}
    records = []
    for r, lab in zip(rows, labels):
        rec: dict[str, Any] = {k: r[k] for k in dict.fromkeys(attrs + spec.attribute_names)}
        for k in binned:  # continuous attributes are stored as numbers when they parse
            rec[k] = _number_or_text(rec.get(k))
        rec["image"] = _abs_path(r[image_col], base, image_suffix) if r[image_col].strip() else ""
        rec["label"] = _abs_path(lab, base) if mask_col and isinstance(lab, str) and lab.strip() else lab
        if patient_col:
            rec["patient_id"] = r[patient_col].strip()
        records.append(rec)
    for k in binned:
        _age_policy(records, k, 2)
    return build_fair_datalist(
        records,
        out,
        spec,
        keep_keys=attrs + (["patient_id"] if patient_col else []) + ["notes"],
        split=[r[split_col] for r in rows] if split_col else None,
        split_fractions=split_fractions,
        seed=seed,
        label_names=label_names if label_names is not None else names,
        row_offset=2,
        source=str(path),
        cluster=[r["patient_id"] or f"row{i}" for i, r in enumerate(records)] if patient_col else None,
        cluster_key="patient_id",
        mask=mask_col is not None,
        allow_cluster_overlap=allow_patient_overlap,
        max_groups=max_groups,
        extra={"source": {"type": "csv", "file": path.name}},
    )


def _number_or_text(v: Any) -> Any:
    if isinstance(v, str) and v.strip() and v.strip().lower() != "nan":
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _sop_index(root: Path) -> dict[str, list[Path]]:
    """SOPInstanceUID -> the files under ``root`` holding it (headers read up to that tag; two when re-exported)."""
    import pydicom

    index: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            try:
                ds = pydicom.dcmread(str(p), stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            except Exception:  # not DICOM: not indexed
                continue
            uid = str(getattr(ds, "SOPInstanceUID", "") or "")
            if uid:
                index.setdefault(uid, []).append(p)
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
    allow_patient_overlap: bool = False,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    max_groups: int | None = None,
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
        positive_label, label_order, age_bins, unknown, split_col: as :func:`datalist_from_table`.
        allow_patient_overlap, split_fractions, seed, max_groups: as :func:`datalist_from_table`.

    Policies (each header is read once per row): a SOPInstanceUID held by two files (a re-export in another
    transfer syntax) is an error naming both, whether the labels name it by UID or name both files; files under
    ``dicom_dir`` the labels do not name are counted (``source.unlabelled_files``, printed by the command);
    ``PatientSex`` ``O``/``U``, placeholder birth dates and ages outside 0..120 are missing, with the reason kept in
    the case's metadata ``notes`` (see :func:`monai_fair.data.read_dicom_demographics`).

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
    unlabelled = _count_unlabelled(root, [Path(r["image"]) for r in records], lpath)
    source = {"type": "dicom", "labels": lpath.name, "tags": {a: DICOM_ATTRIBUTES[a] for a in attributes}}
    return build_fair_datalist(
        records,
        out,
        attribute_spec(attributes, age_bins, unknown),
        keep_keys=[*attributes, "patient_id", "notes"],
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
        allow_cluster_overlap=allow_patient_overlap,
        max_groups=max_groups,
        extra={"source": {**source, "unlabelled_files": unlabelled}},
    )


def _count_unlabelled(root: Path, used: Sequence[Path], labels: Path) -> int:
    """Files under ``root`` (hidden ones and the labels table aside) that no record's image is or contains."""
    used_files = {p.resolve() for p in used if p.is_file()}
    used_dirs = [p.resolve() for p in used if p.is_dir()]
    n = 0
    for p in root.rglob("*"):
        if not p.is_file() or p.name.startswith(".") or p.resolve() == labels.resolve():
            continue
        rp = p.resolve()
        if rp not in used_files and not any(d in rp.parents for d in used_dirs):
            n += 1
    return n


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
    index: dict[str, list[Path]] | None = None
    records, problems = [], []
    by_uid: dict[str, list[str]] = {}
    for i, r in enumerate(rows):
        where = f"{lpath} row {i + 2}"
        ref = r[image_col]
        p = root / ref if ref else None
        if p is None or not p.exists():
            index = _sop_index(root) if index is None else index
            found = index.get(ref, [])
            if len(found) > 1:
                problems.append(
                    f"{where}: SOPInstanceUID {ref} is held by {len(found)} files ({', '.join(map(str, found))}): "
                    "re-exports of one image; name the file to use by its path, or remove the copies"
                )
                continue
            p = found[0] if found else None
        if p is None:
            problems.append(f"{where}: {ref!r} is neither a file under {root} nor a SOPInstanceUID found there")
            continue
        rec, problem = _dicom_record(p, r, i, where, lpath, attributes, label_col, mask_col, split_col)
        if rec is None:
            problems.append(problem)
            continue
        uid = rec.pop("_uid")
        if uid and p.is_file():
            by_uid.setdefault(uid, []).append(f"{p} ({where})")
        rec["case_id"] = _stem(ref)
        records.append(rec)
    for uid, files in by_uid.items():
        if len(files) > 1:
            problems.append(
                f"SOPInstanceUID {uid} is held by {len(files)} labelled files: {'; '.join(files)} (one image exported "
                "twice, e.g. in two transfer syntaxes): keep one of them"
            )
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
    """The record of labels row ``i`` whose image is ``p``, or ``(None, problem)`` when it cannot be read.

    The header that :func:`read_image_info` reads is the one the demographics come from (read once per row).
    """
    from monai_fair.data.dicom import read_dicom_demographics

    info = read_image_info(p)
    if not info.ok:
        return None, f"{where}: {p}: {info.error}"
    try:
        demo = read_dicom_demographics(info.extra["dicom"])
    except (KeyError, ValueError) as e:
        return None, f"{where}: {p}: {e}"
    rec: dict[str, Any] = {a: demo[a] for a in attributes}
    notes = {a: n for a, n in demo["notes"].items() if a in attributes}
    if notes:
        rec["notes"] = notes
    rec["image"] = str(p.resolve())
    rec["patient_id"] = demo.get("patient_id") or f"row{i + 2}"
    rec["_uid"] = demo.get("sop_instance_uid")
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
    used = sorted({g for c in counts.values() for g, _ in c})  # empty combinations of an intersection: not listed
    width = max([len(names[g]) for g in used] + [5]) + 2
    head = f"{'split':<11}{'group':<{width}}" + "".join(f"{col_name(c):>14}" for c in cols) + f"{'split total':>14}"
    lines = [head]
    for s in SPLIT_KEYS:
        cells = [[counts[s].get((g, lab), 0) for lab in cols] for g in used]
        small = any(0 < n < k for row in cells for n in row)
        total = "suppressed" if small else str(sum(counts[s].values()))
        for j, g in enumerate(used):
            row = "".join(f"{(f'<{k}' if 0 < n < k else str(n)):>14}" for n in cells[j])
            lines.append(f"{s:<11}{names[g]:<{width}}{row}" + (f"{total:>14}" if j == 0 else ""))
    if len(used) < len(names):
        lines.append(f"({len(names) - len(used)} of {len(names)} group combinations hold no case and are not listed)")
    if k > 1:
        lines.append(f"(cells of 1..{k - 1} cases are shown as <{k}: --min-group-size)")
    lines += _unknown_reasons(data, names, k)
    return "\n".join(lines)


def _unknown_reasons(data: Mapping[str, Any], names: Sequence[str], k: int) -> list[str]:
    """Why cases are in the ``unknown`` group: per missing attribute (with the others known), and the notes
    (placeholder birth date, implausible age, sex code ``U``/``O``), most frequent first, without counts (a count
    per reason beside the suppressed table could give a hidden cell by subtraction)."""
    if UNKNOWN_GROUP_NAME not in names:
        return []
    unknown = names.index(UNKNOWN_GROUP_NAME)
    spec = data.get("group_spec") or {}
    attrs = [a["name"] for a in spec.get("attributes", [])]
    missing_values = spec.get("unknown_values", DEFAULT_UNKNOWN_VALUES)
    meta = data.get("metadata") or {}
    why: Counter = Counter()
    for s in SPLIT_KEYS:
        for it in data.get(s) or []:
            if int(it["group"]) != unknown:
                continue
            m = meta.get(str(it.get("case_id")), {})
            notes = m.get("notes") or {}
            lacking = [a for a in attrs if is_missing_value(m.get(a), missing_values)]
            for a in lacking:
                known = [b for b in attrs if b not in lacking]
                v = m.get(a)
                reason = notes.get(a) or (f"{a} {v!r} read as unknown" if v not in (None, "") else f"no {a} value")
                why[f"{reason}" + (f" ({', '.join(known)} known)" if known else "")] += 1
    if not why:
        return []
    # reasons only, most frequent first: per-reason counts could reveal a suppressed cell by subtraction
    return [f"'{UNKNOWN_GROUP_NAME}' group, why (most frequent first): {'; '.join(r for r, _ in why.most_common())}"]
