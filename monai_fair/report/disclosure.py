# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Differencing across reports: a disclosure record of the groupings already released, and a refusal of a report
whose groups would make a hidden group of an earlier (or of this) report derivable by subtraction.

One report hides every group with fewer than ``min_group_size`` cases and, by secondary suppression, enough others
that ``overall - visible groups`` never isolates one hidden group (:func:`monai_fair.metrics.suppress_groups`).
Two reports on the same cases can still undo that: report 1 by sex shows ``F`` (n = 60), report 2 by sex x age
shows ``F, <60`` (n = 52) and hides ``F, >=60`` (n = 8); then ``F - (F, <60)`` gives the hidden cell's ``n`` and
every additive figure (correct decisions, positives, detected positives: accuracy, TPR, ...) exactly.

**The record** (``disclosure_record.json``, by default in the parent folder of ``--out``, i.e. the output root
shared by the reports of one study) lists every released report: its output folder, attribute, source file,
``min_group_size`` and, per group, whether it was shown and the *salted hashes* of its case ids (the salt is drawn
once per record). The record is therefore case-level data: keep it with the predictions, never release it.

**The check** (:func:`find_conflicts`): the cases of all recorded reports and the new one are split into *atoms*
(cases with the same group in every report). Every released table is a set of sums over atoms: each visible group
and each visible overall row is a 0/1 vector over atoms. A hidden group is derivable when its vector lies in the
linear span of the visible vectors (then its ``n`` and every additive statistic follow by adding and subtracting
released figures). The new report is refused, before anything is written, when it makes any hidden group of any
recorded report (or of itself) derivable; the error names the earlier report and the groups that would combine.
Rerunning a report into the same output folder replaces its entry (no new release).

**Residual risk** (stated in ``docs/report.md``): the check needs case ids (a table without them is not
checked); it covers additive figures over the same case ids, not non-linear ones (a gap or an AUC of a visible
group gives no exact hidden value, but several of them narrow it), not reports written to another output root or
with another record, not releases outside monai-fair, and not case ids that differ between tables for the same
patient.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.report.predictions import ReportInputError
from monai_fair.utils.io import atomic_write_json

__all__ = [
    "RECORD_NAME",
    "Release",
    "default_record_path",
    "load_record",
    "make_release",
    "find_conflicts",
    "earlier_releases",
    "write_record",
]

RECORD_NAME = "disclosure_record.json"
_VERSION = 1


@dataclass
class Release:
    """One released report: its groups' cases (hashed ids), which groups are shown, whether overall is shown."""

    report: str
    attribute: str
    source: str
    min_group_size: int
    cells: dict[str, list[str]]
    visible: dict[str, bool]
    overall_visible: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "attribute": self.attribute,
            "source": self.source,
            "min_group_size": self.min_group_size,
            "overall_visible": self.overall_visible,
            "groups": [{"name": k, "visible": self.visible[k], "cases": v} for k, v in self.cells.items()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Release:
        cells = {g["name"]: list(g["cases"]) for g in d["groups"]}
        visible = {g["name"]: bool(g["visible"]) for g in d["groups"]}
        return cls(
            d["report"], d["attribute"], d["source"], int(d["min_group_size"]), cells, visible, d["overall_visible"]
        )


def default_record_path(out_dir: str | Path) -> Path:
    """The record of the output root: ``disclosure_record.json`` in the parent folder of ``out_dir``."""
    return Path(out_dir).resolve().parent / RECORD_NAME


def load_record(path: str | Path) -> dict[str, Any]:
    """The record at ``path`` (a new, empty one with a fresh salt when the file does not exist)."""
    p = Path(path)
    if not p.exists():
        return {"version": _VERSION, "salt": secrets.token_hex(16), "releases": []}
    try:
        rec = json.loads(p.read_text())
        if rec.get("version") != _VERSION or "salt" not in rec or not isinstance(rec.get("releases"), list):
            raise ValueError("unknown layout")
    except (ValueError, OSError) as e:
        raise ReportInputError(f"{p}: not a monai-fair disclosure record ({e}); move it away or fix it.") from e
    return rec


def make_release(
    record: dict[str, Any],
    report: str,
    attribute: str,
    source: str,
    min_group_size: int,
    case_ids: Sequence[str],
    group: Sequence[int],
    group_names: Sequence[str],
    visible_groups: Sequence[str],
    overall_visible: bool,
) -> Release:
    """A :class:`Release` with the case ids hashed with the record's salt (SHA-256, 16 hex digits)."""
    salt = record["salt"]
    hashed = np.asarray([hashlib.sha256(f"{salt}:{c}".encode()).hexdigest()[:16] for c in case_ids], dtype=object)
    g = np.asarray(group, dtype=np.int64).reshape(-1)
    cells = {str(group_names[k]): sorted(hashed[g == k].tolist()) for k in np.unique(g).tolist()}
    shown = set(map(str, visible_groups))
    return Release(
        report, attribute, source, int(min_group_size), cells, {k: k in shown for k in cells}, bool(overall_visible)
    )


def _vectors(releases: list[Release]) -> tuple[np.ndarray, list[tuple[int, str | None, bool]]]:
    """0/1 vectors over atoms ``(V, A)`` of every group and overall row, with ``(release, group or None, visible)``."""
    per = [
        (j, k, np.asarray(cases, dtype=str)) for j, r in enumerate(releases) for k, cases in enumerate(r.cells.values())
    ]
    ids = np.unique(np.concatenate([c for *_, c in per])) if per else np.zeros(0, dtype=str)
    labels = np.full((len(releases), ids.size), -1, dtype=np.int64)  # group of every case in every release
    for j, k, cases in per:  # one vectorised lookup per group
        labels[j, np.searchsorted(ids, cases)] = k
    _, atom = np.unique(labels.T, axis=0, return_inverse=True)
    atom = atom.reshape(-1)
    n_atoms = int(atom.max()) + 1 if atom.size else 0
    rows, meta = [], []
    for j, r in enumerate(releases):
        in_r = labels[j] >= 0
        rows.append(np.bincount(atom[in_r], minlength=n_atoms) > 0)
        meta.append((j, None, r.overall_visible))
        for k, name in enumerate(r.cells):
            rows.append(np.bincount(atom[labels[j] == k], minlength=n_atoms) > 0)
            meta.append((j, name, r.visible[name]))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), n_atoms), meta


def _in_span(basis: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """Coefficients ``c`` with ``basis.T @ c == v`` (exact up to rounding), else ``None``."""
    if basis.size == 0:
        return None
    c, *_ = np.linalg.lstsq(basis.T, v, rcond=None)
    return c if float(np.abs(basis.T @ c - v).max()) < 1e-8 else None


def _sparse(basis: np.ndarray, v: np.ndarray, first: list[int]) -> tuple[list[int], np.ndarray]:
    """A short combination of rows of ``basis`` giving ``v`` (for the message): rows are dropped one at a time
    (overall rows ``first``) while ``v`` stays in the span of the rest."""
    keep = list(range(basis.shape[0]))
    if len(keep) <= 200:
        for i in [*first, *(i for i in reversed(keep) if i not in first)]:
            rest = [k for k in keep if k != i]
            if _in_span(basis[rest], v) is not None:
                keep = rest
    return keep, _in_span(basis[keep], v)


def find_conflicts(releases: list[Release], new: Release) -> list[str]:
    """Hidden groups (of any report) that releasing ``new`` after ``releases`` makes derivable, and that were not
    derivable from ``releases`` alone: one message each, naming the reports and the visible groups whose sums and
    differences give it (empty: no conflict). A group already shown by an earlier report is no new disclosure."""
    allr = [*releases, new]
    vecs, meta = _vectors(allr)
    vis = np.asarray([m[2] for m in meta], dtype=bool)
    earlier = np.asarray([m[0] < len(releases) for m in meta], dtype=bool)
    basis, before = vecs[vis], vecs[vis & earlier]
    shown = [m for m, keep in zip(meta, vis) if keep]
    out = []
    for v, (j, name, visible) in zip(vecs, meta):
        if visible or name is None or not v.any():
            continue
        c = _in_span(basis, v)
        if c is None or _in_span(before, v) is not None:
            continue
        keep, c = _sparse(basis, v, [i for i, m in enumerate(shown) if m[1] is None])
        terms = [
            f"{'+' if w > 0 else '-'} {allr[shown[i][0]].report}:{shown[i][1] or 'overall'}"
            for i, w in zip(keep, c)
            if abs(w) > 1e-8
        ]
        who = "this report" if j == len(releases) else f"the earlier report {allr[j].report!r}"
        out.append(
            f"a hidden group of {who} (attribute {allr[j].attribute!r}) would be derivable as "
            + " ".join(terms).lstrip("+ ")
        )
    return out


def earlier_releases(record: dict[str, Any], new: Release) -> tuple[list[Release], list[str]]:
    """The earlier releases (the entry of the same output folder, if any, is replaced) and the conflicts of ``new``."""
    earlier = [Release.from_json(d) for d in record["releases"] if d["report"] != new.report]
    return earlier, find_conflicts(earlier, new)


def write_record(path: str | Path, record: dict[str, Any], earlier: list[Release], new: Release) -> Path:
    """Write the record with ``earlier`` and ``new`` (atomically)."""
    rec = {**record, "releases": [r.to_json() for r in (*earlier, new)]}
    return atomic_write_json(path, rec, indent=1)
