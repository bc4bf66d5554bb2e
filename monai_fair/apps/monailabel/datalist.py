# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Training datalists with sensitive attributes, joined from a MONAI Label datastore.

MONAI Label's own bundle training task keeps only ``image`` and ``label`` of each datastore item, so the group of
an image never reaches the bundle. :func:`fetch_group_datalist` rebuilds the datalist from the datastore's
*labeled* images and joins, per image id, the raw sensitive attributes from

1. the image's info in the datastore (what a client uploads as ``params`` with ``PUT /datastore/image``, or sets
   later with ``PUT /datastore/image/info``), and
2. optionally a CSV file with an ``image_id`` column (values in the CSV take precedence),

then encodes them into integer group ids with :class:`monai_fair.data.GroupSpec` (the monai-fair group convention,
see ``docs/design.md``). Missing attributes follow the spec's ``unknown`` policy; an image whose attribute is
absent everywhere is reported by its image id (never by attribute values of other patients).

This module does not import ``monailabel``: any object with the datastore methods used below works.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_fair.data import GroupSpec

__all__ = ["fetch_group_datalist", "load_attribute_csv", "parse_group_spec", "write_fair_datalist"]


def parse_group_spec(
    spec: str | Mapping[str, Any] | GroupSpec | None,
    attribute: str | None = None,
    categories: str | Sequence[str] | None = None,
) -> GroupSpec | None:
    """Build a :class:`~monai_fair.data.GroupSpec` from app configuration values.

    Args:
        spec: a ``GroupSpec``, its ``to_dict()`` form, or that form as a JSON string (``--conf fair_group_spec``).
        attribute: alternatively the name of one categorical attribute (``--conf fair_attribute sex``).
        categories: its categories in group-id order, a list or a comma-separated string (``"F,M"``); ``None``
            infers them (sorted) from the data.

    Returns:
        The spec, or ``None`` when neither ``spec`` nor ``attribute`` is given (the datastore info must then carry
        integer ``group`` ids directly).

    Raises:
        ValueError: when ``spec`` is not valid JSON / not a group spec.
    """
    if isinstance(spec, GroupSpec):
        return spec
    if isinstance(spec, str) and spec.strip():
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ValueError(f"fair_group_spec is not valid JSON ({e}): {spec!r}") from e
    if isinstance(spec, Mapping):
        return GroupSpec.from_dict(spec)
    if attribute:
        if isinstance(categories, str):
            categories = [c.strip() for c in categories.split(",") if c.strip()] or None
        return GroupSpec.categorical(attribute, categories)
    return None


def load_attribute_csv(path: str | os.PathLike, id_column: str = "image_id") -> dict[str, dict[str, str]]:
    """Read ``path`` (CSV with a header) into ``{image_id: {column: value}}``.

    Raises:
        FileNotFoundError: when the file does not exist.
        KeyError: when the file has no ``id_column`` column.
        ValueError: when an image id occurs twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attribute CSV not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or id_column not in reader.fieldnames:
            raise KeyError(f"attribute CSV {path} has no '{id_column}' column (columns: {reader.fieldnames}).")
        rows: dict[str, dict[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            key = row.pop(id_column)
            if key in rows:
                raise ValueError(f"attribute CSV {path}: image id {key!r} occurs twice (line {line}).")
            rows[key] = row
    return rows


def fetch_group_datalist(
    datastore: Any,
    spec: GroupSpec | None,
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
    group_names: Sequence[str] | None = None,
    group_key: str = "group",
    label_tag: str = "final",
) -> tuple[list[dict[str, Any]], list[str]]:
    """Datalist of the datastore's labeled images with each image's group id.

    Args:
        datastore: a MONAI Label ``Datastore`` (``get_labeled_images``, ``get_image_uri``, ``get_label_uri``,
            ``get_image_info``).
        spec: how the raw attributes become group ids; ``None``: the attributes carry ``group_key`` (an integer)
            already, and ``group_names`` names the groups.
        attributes: extra attributes per image id (e.g. :func:`load_attribute_csv`), overriding the image info.
        group_names: group names when ``spec`` is ``None``.
        group_key: key of the group id in the returned items.
        label_tag: the datastore label tag used for training (MONAI Label's ``final``).

    Returns:
        ``(items, group_names)``; each item has ``image``, ``label``, ``image_id`` and ``group_key`` (raw
        attributes are not copied into the items).

    Raises:
        ValueError: when there is no labeled image, an image has no attribute (named by image id), or a group id is
            out of range.
    """
    ids = sorted(datastore.get_labeled_images())
    if not ids:
        raise ValueError("the datastore has no labeled image (label tag 'final'); nothing to train on.")
    attributes = attributes or {}
    needed = spec.attribute_names if spec is not None else [group_key]
    records, items = [], []
    for image_id in ids:
        info = dict(datastore.get_image_info(image_id) or {})
        info.update(attributes.get(image_id, {}))
        rec = {k: info.get(k) for k in needed}
        if spec is None or spec.unknown == "error":
            absent = [k for k in needed if k not in info]
            if absent:
                raise ValueError(
                    f"image {image_id!r} has no sensitive attribute {absent} in its datastore info or the attribute "
                    "CSV; upload it with the image (params) or set it with PUT /datastore/image/info."
                )
        records.append(rec)
        items.append(
            {
                "image": datastore.get_image_uri(image_id),
                "label": datastore.get_label_uri(image_id, label_tag),
                "image_id": image_id,
            }
        )
    if spec is None:
        if not group_names:
            raise ValueError("without a group spec, fair_group_names (the names of the group ids) must be set.")
        out = []
        for image_id, rec, item in zip(ids, records, items):
            try:
                gid = int(rec[group_key])
            except (TypeError, ValueError) as e:
                raise ValueError(f"image {image_id!r}: '{group_key}' must be an integer group id.") from e
            if not 0 <= gid < len(group_names):
                raise ValueError(f"image {image_id!r}: group id {gid} outside 0..{len(group_names) - 1}.")
            out.append({**item, group_key: gid})
        return out, list(group_names)
    encoded, names = spec.assign([{**rec, "_row": i} for i, rec in enumerate(records)], group_key=group_key)
    return [{**items[r["_row"]], group_key: r[group_key]} for r in encoded], names


def write_fair_datalist(
    path: str | os.PathLike,
    training: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    group_names: Sequence[str],
    spec: GroupSpec | None = None,
) -> Path:
    """Write a monai-fair datalist file (decathlon JSON with ``group_names``/``group_spec``; absolute paths)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"training": list(training), "validation": list(validation), "group_names": list(group_names)}
    if spec is not None:
        doc["group_spec"] = spec.to_dict()
    path.write_text(json.dumps(doc, indent=1))
    return path
