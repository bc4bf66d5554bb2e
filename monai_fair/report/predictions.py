# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Read a predictions CSV (the ``predictions.csv`` convention of the bundles' inference) for the report and compare.

The convention: one row per case, a header, a case id column (``case_id``), the image, one score column per class
``prob_<class>`` (class probabilities, in class order), ``pred`` (predicted class), and ``label`` / ``group`` when the
datalist has them; optionally a patient column (``patient_id``) for the cluster bootstrap. Every column can be named
explicitly; with no flag the columns are detected from their names (:data:`AUTO_COLUMNS`).

Rules, each applied with a one-line :class:`ReportInputError` naming the file, column, line and value when the
input does not fit:

* **Scores**: ``prob_<class>`` columns (or ``--score-col``). Binary: the positive class is the one named by
  ``positive_label``, else class ``1``/the second column. The decision is ``score >= threshold`` (default 0.5)
  unless a predicted-label column is given explicitly; the report records where the threshold came from.
* **Labels**: integers ``0..C-1``, or class names matching the ``prob_<class>`` suffixes, or any strings with
  ``positive_label`` (binary: ``label == positive_label``). Strings with no rule that orders them are an error: an
  alphabetical order would silently decide which class is positive.
* **Missing values** (empty, ``nan``, ``NA``, ``null``, ``None``) in a used column: ``nan_policy="omit"`` drops the
  row and counts it (``n_omitted``), ``"error"`` stops at the first one, naming its line and case id.
* **Groups**: compared after stripping whitespace and case-folding (``Male``, ``male `` and ``MALE`` are one group,
  shown with their most frequent spelling); ``group_aliases={"male": "M"}`` merges spellings into one name. Integer
  ids are named by ``group_names`` when given.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.report.inputs import ClassificationInputs

__all__ = [
    "AUTO_COLUMNS",
    "PredictionTable",
    "check_unique_ids",
    "ReportInputError",
    "group_ids",
    "missing_cells",
    "parse_floats",
    "parse_group_aliases",
    "pick_column",
    "read_csv_columns",
    "read_prediction_table",
    "stripped_cells",
]

#: column names tried, in order, when a column is not given explicitly
AUTO_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("case_id", "id", "case", "image_id"),
    "label": ("label", "target", "y"),
    "group": ("group", "group_name"),
    "pred": ("pred", "prediction", "y_pred"),
    "score": ("score", "prob", "probability"),
    "cluster": ("patient_id", "patient", "cluster"),
}
_MISSING = ("", "nan", "na", "n/a", "null", "none")
#: cells pandas reads as NaN in a numeric column (the exact spellings of :data:`_MISSING` that are not numbers)
_NA_TOKENS = ["", "nan", "NaN", "NAN", "na", "NA", "Na", "n/a", "N/A", "null", "NULL", "Null", "none", "None", "NONE"]


class ReportInputError(ValueError):
    """A user-facing input problem (file, column or value); the CLIs print its one-line message and exit 2."""


@dataclass(kw_only=True)
class PredictionTable(ClassificationInputs):
    """The columns of a predictions CSV, converted and validated: the report's
    :class:`~monai_fair.report.inputs.ClassificationInputs` plus where they came from.

    Attributes:
        path: the CSV file.
        y: ``(N,)`` integer class ids, or ``None`` when the table has no label column (``require_label=False``).
        y_score: ``(N,)`` positive-class probability (binary) or ``(N, C)`` class probabilities, or ``None``.
        y_pred: ``(N,)`` predicted class ids of the predicted-label column, or ``None`` when the decisions are the
            thresholded/argmax scores (they are in ``decisions``).
        decisions: ``(N,)`` predicted class ids however they came (the column, or thresholded/argmax scores).
        group: ``(N,)`` integer group ids into ``group_names``, or ``None``.
        group_names: names of the group ids.
        case_id: ``(N,)`` case ids (strings) or ``None``.
        cluster: ``(N,)`` integer cluster (patient) ids or ``None``.
        class_names: names of the classes (index = class id).
        threshold: the binary decision threshold used (``None`` when predictions came from a column / argmax).
        threshold_source: where the decision came from, in words (for the report).
        n_omitted: rows dropped for a missing value (``nan_policy="omit"``).
        columns: which CSV column fed which role (for the report).
        omitted_ids: case ids of the dropped rows (when there is an id column).
    """

    path: Path
    decisions: np.ndarray | None = None
    case_id: np.ndarray | None = None
    columns: dict[str, str | list[str]] = field(default_factory=dict)
    omitted_ids: np.ndarray | None = None

    def __len__(self) -> int:
        for a in (self.y, self.decisions, self.group, self.case_id):
            if a is not None:
                return len(a)
        return 0


def parse_group_aliases(specs: Sequence[str] | None) -> dict[str, str]:
    """``["male=M", "female=F,f=F"]`` -> ``{"male": "M", "female": "F", "f": "F"}`` (keys normalised)."""
    out: dict[str, str] = {}
    for spec in specs or []:
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ReportInputError(f"--group-alias {part!r}: expected VALUE=NAME, e.g. male=M.")
            src, dst = (s.strip() for s in part.split("=", 1))
            if not src or not dst:
                raise ReportInputError(f"--group-alias {part!r}: expected VALUE=NAME, e.g. male=M.")
            out[_norm(src)] = dst
    return out


def _norm(v: str) -> str:
    return " ".join(v.split()).casefold()


def read_csv_columns(
    path: Path, numeric: Sequence[str] | Callable[[list[str]], Sequence[str]] = ()
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Header and columns of a CSV; one-line errors for a missing/empty/ragged file.

    Read by pandas' C parser: the ``numeric`` columns as ``float64`` (Python's correctly rounded conversion,
    ``float_precision="round_trip"``; a missing cell is NaN), every other column as cell strings (no conversion:
    the readers apply their own missing-value rule). A ``numeric`` column with a cell that is not a plain number
    (e.g. `` NA `` or a typo) is read as strings instead, so the readers name the cell. A file pandas cannot read
    as a rectangle (a line with more fields than the header), or with an empty last cell (which may be a short
    line), is read again with the ``csv`` module, whose line-by-line check names the first ragged line.

    Args:
        path: the CSV file.
        numeric: columns expected to hold numbers (scores, Dice), or a function of the header giving them.
    """
    if not path.is_file():
        raise ReportInputError(f"predictions CSV not found: {path}")
    with path.open(newline="") as f:
        try:
            header = [h.strip() for h in next(csv.reader(f))]
        except StopIteration:
            raise ReportInputError(f"{path}: the file is empty (expected a header line).") from None
    if len(set(header)) != len(header):
        dup = sorted(h for h, c in Counter(header).items() if c > 1)
        raise ReportInputError(f"{path}: duplicate column name(s) {dup} in the header.")
    import pandas as pd

    def read(as_float: set[int]) -> Any:
        return pd.read_csv(
            path,
            header=None,
            skiprows=1,
            names=list(range(len(header))),
            dtype={j: (np.float64 if j in as_float else object) for j in range(len(header))},
            keep_default_na=False,
            na_values={j: _NA_TOKENS for j in as_float},
            float_precision="round_trip",
        )

    try:
        try:
            wanted = set(numeric(header) if callable(numeric) else numeric)
            frame = read({j for j, h in enumerate(header) if h in wanted})
        except ValueError:  # a numeric column holds a cell that is not a plain number: all as strings
            frame = read(set())
    except (pd.errors.ParserError, ValueError):
        return _read_csv_columns_checked(path)
    if frame.empty:
        raise ReportInputError(f"{path}: no data rows after the header.")
    last = frame[len(header) - 1].to_numpy()
    if (last == "").any() or (last.dtype.kind == "f" and np.isnan(last).any()):  # maybe a short line
        return _read_csv_columns_checked(path)
    return header, {
        h: frame[j].to_numpy(dtype=None if frame[j].dtype.kind == "f" else object) for j, h in enumerate(header)
    }


def _read_csv_columns_checked(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """:func:`read_csv_columns` with the ``csv`` module: a blank line is skipped, a line with another number of
    fields than the header is an error naming it."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ReportInputError(f"{path}: the file is empty (expected a header line).") from None
        rows = list(reader)
    if not rows:
        raise ReportInputError(f"{path}: no data rows after the header.")
    if len(set(header)) != len(header):
        dup = sorted(h for h, c in Counter(header).items() if c > 1)
        raise ReportInputError(f"{path}: duplicate column name(s) {dup} in the header.")
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header) and any(c.strip() for c in r)]
    if bad:
        raise ReportInputError(
            f"{path}: line {bad[0]} has a different number of fields than the header ({len(header)})"
            + (f" ({len(bad)} such lines)." if len(bad) > 1 else ".")
        )
    rows = [r for r in rows if len(r) == len(header)]
    cols = {h: np.array([r[j] for r in rows], dtype=object) for j, h in enumerate(header)}
    return header, cols


def pick_column(header: list[str], given: str | None, role: str, path: Path, required: bool) -> str | None:
    """The column for ``role``: ``given`` (must exist; ``"none"`` turns off id/cluster) or the first of
    :data:`AUTO_COLUMNS` present; ``None`` when absent and not ``required``."""
    if given is not None:
        if given.lower() == "none" and role in ("cluster", "id"):
            return None
        if given not in header:
            raise ReportInputError(f"{path}: no column {given!r} (--{role}-col); the header has {header}.")
        return given
    for c in AUTO_COLUMNS[role]:
        if c in header:
            return c
    if required:
        raise ReportInputError(
            f"{path}: no {role} column (looked for {list(AUTO_COLUMNS[role])}); name it with --{role}-col. "
            f"The header has {header}."
        )
    return None


def _distinct(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, distinct)``: the distinct cells as a string array in order of first appearance and, per cell, the
    index of its value (pandas' hash factorisation: a column of 10^6 cells holds few distinct labels or groups, so
    the string work below scales with those, and the first offending distinct value is the first offending row)."""
    import pandas as pd

    codes, uniq = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    return codes, np.asarray(uniq, dtype=str)


def _per_distinct(values: Any, fn: Any, dtype: Any = None) -> np.ndarray:
    """``fn`` applied to the distinct cells only (:func:`_distinct`), mapped back to every cell."""
    codes, uniq = _distinct(values)
    return np.asarray(fn(uniq), dtype=dtype)[codes]


def stripped_cells(values: Any) -> np.ndarray:
    """Cells without surrounding whitespace, as an array of ``str`` (a numeric column is returned as it is)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values
    if len(values) == 0:
        return np.asarray(values, dtype=str)
    return _per_distinct(values, np.char.strip, dtype=object)


def missing_cells(values: np.ndarray) -> np.ndarray:
    """Bool mask of missing cells (empty, ``nan``, ``NA``, ``n/a``, ``null``, ``None``; any case; NaN)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    return _per_distinct(values, lambda u: np.isin(np.char.lower(u), _MISSING))


def parse_floats(values: np.ndarray, path: Path, col: str) -> np.ndarray:
    """Floats of stripped cells (missing -> NaN); a non-number is an error naming its line and value."""
    if values.dtype.kind == "f":  # read as numbers (missing: NaN)
        return values.astype(np.float64, copy=True)
    out = np.full(values.shape, np.nan)
    ok = ~missing_cells(values)
    try:
        if ok.any():  # numpy's (correctly rounded) string -> float64, once per distinct cell
            out[ok] = _per_distinct(values[ok], lambda u: u.astype(np.float64))
    except ValueError:
        for i in np.flatnonzero(ok):  # only on error: find the offending line
            try:
                float(values[i])
            except ValueError:
                raise ReportInputError(
                    f"{path}, line {i + 2}: column {col!r} holds {str(values[i])!r}, expected a number."
                ) from None
    return out


def _class_ids(
    values: np.ndarray,
    path: Path,
    col: str,
    class_names: list[str],
    positive: set[str] | None,
    num_classes: int | None,
) -> np.ndarray:
    """Class ids of label/prediction strings (missing values -> -1).

    ``positive`` (binary): the case-folded spellings of the positive class; a value is 1 iff it is one of them.
    ``num_classes=None``: integer ids of any range (no score columns to check them against).
    """
    miss = missing_cells(values)
    out = np.full(values.shape, -1, dtype=np.int64)
    codes, vals = _distinct(values[~miss])
    out[~miss] = _distinct_class_ids(vals, path, col, class_names, positive, num_classes)[codes]
    return out


def _distinct_class_ids(
    vals: np.ndarray, path: Path, col: str, class_names: list[str], positive: set[str] | None, num_classes: int | None
) -> np.ndarray:
    """:func:`_class_ids` of the distinct non-missing cells ``vals`` (in order of first appearance)."""
    folded = np.char.lower(vals)
    if positive is not None:
        distinct = sorted(set(vals.tolist()))
        if len(distinct) > 2:
            raise ReportInputError(
                f"{path}: column {col!r} holds {len(distinct)} distinct values {distinct[:10]}; "
                "--positive-label is for two classes."
            )
        return np.isin(folded, list(positive)).astype(np.int64)
    lookup = {n.lower(): i for i, n in enumerate(class_names)}
    if vals.size and not np.char.isdigit(vals).all() and np.isin(folded, list(lookup)).all():
        return np.array([lookup[v] for v in folded.tolist()], dtype=np.int64)
    try:
        f = vals.astype(np.float64)
    except ValueError:
        seen = sorted(set(vals.tolist()))[:10]
        raise ReportInputError(
            f"{path}: column {col!r} holds class names {seen}; say which one is positive with --positive-label "
            "(or name the score columns prob_<class> after them)."
        ) from None
    if not np.all(f == np.round(f)):
        i = int(np.flatnonzero(f != np.round(f))[0])
        raise ReportInputError(f"{path}: column {col!r} holds {vals[i]!r}, expected an integer class id.")
    ids = f.astype(np.int64)
    hi = num_classes if num_classes is not None else np.iinfo(np.int64).max
    bad = (ids < 0) | (ids >= hi)
    if bad.any():
        raise ReportInputError(
            f"{path}: column {col!r} holds class {int(ids[bad][0])}, outside 0..{hi - 1} (classes {class_names})."
        )
    return ids


def _score_columns(header: list[str], score_cols: Sequence[str] | None, path: Path) -> list[str]:
    """The score columns: ``score_cols`` (must exist), else the ``prob_*`` columns, else a ``score`` column."""
    if score_cols:
        missing = [c for c in score_cols if c not in header]
        if missing:
            raise ReportInputError(f"{path}: no column(s) {missing} (--score-col); the header has {header}.")
        return list(score_cols)
    s_cols = [h for h in header if h.startswith("prob_")]
    if not s_cols:
        sc = pick_column(header, None, "score", path, False)
        s_cols = [sc] if sc else []
    return s_cols


def _classes(
    s_cols: list[str], positive_label: str | None, path: Path
) -> tuple[list[str], int | None, set[str] | None, int]:
    """Class names, number of classes, positive-class spellings and positive score column index."""
    if len(s_cols) > 1:
        class_names = [c[len("prob_") :] if c.startswith("prob_") else str(i) for i, c in enumerate(s_cols)]
    else:
        class_names = ["0", "1"]
    num_classes: int | None = max(len(s_cols), 2) if s_cols else None
    positive: set[str] | None = None
    pos_idx = 1
    if positive_label is not None:
        if len(s_cols) > 2:
            raise ReportInputError(
                f"{path}: --positive-label is for binary tasks; the file has {len(s_cols)} score columns {s_cols}."
            )
        pl = positive_label.strip().lower()
        folded_names = [n.lower() for n in class_names]
        positive = {pl}
        if pl in folded_names:
            pos_idx = folded_names.index(pl)
            positive.add(str(pos_idx))
        elif len(s_cols) == 2 and pl not in ("0", "1"):
            raise ReportInputError(
                f"{path}: --positive-label {positive_label!r} names no score column; the classes are {class_names}."
            )
        if pos_idx == 0:
            class_names = class_names[::-1]
        num_classes = 2
    return class_names, num_classes, positive, pos_idx


def _pred_column(
    header: list[str], pred_col: str | None, s_cols: list[str], threshold: float | None, path: Path
) -> str | None:
    """The predicted-label column: given, or detected when there are no score columns; ``None`` otherwise."""
    pr_c = None
    if pred_col is not None:
        pr_c = pick_column(header, pred_col, "pred", path, True)
    elif not s_cols:
        pr_c = pick_column(header, None, "pred", path, False)
        if pr_c is None:
            raise ReportInputError(
                f"{path}: no score column (prob_<class>, score) and no predicted-label column (pred); "
                f"name one with --score-col or --pred-col. The header has {header}."
            )
    if pr_c is not None and threshold is not None:
        raise ReportInputError(f"{path}: --threshold applies to scores; it cannot be combined with --pred-col.")
    return pr_c


def _rows_to_keep(
    raw: dict[str, np.ndarray], used: list[str], n: int, case_ids: np.ndarray | None, path: Path, nan_policy: str
) -> np.ndarray:
    """Bool mask of the rows without a missing value in a used column (``nan_policy="error"``: raise instead)."""
    miss = np.zeros(n, dtype=bool)
    first_missing: tuple[int, str] | None = None
    for c in used:
        m = missing_cells(raw[c])
        if m.any() and (first_missing is None or int(np.flatnonzero(m)[0]) < first_missing[0]):
            first_missing = (int(np.flatnonzero(m)[0]), c)
        miss |= m
    if miss.any() and nan_policy == "error":
        i, c = first_missing  # type: ignore[misc]
        case = f" (case {str(case_ids[i])!r})" if case_ids is not None else ""
        raise ReportInputError(
            f"{path}, line {i + 2}{case}: column {c!r} is empty or NaN ({int(miss.sum())} such row(s)); "
            "fix the file or use --nan-policy omit to drop and count them."
        )
    keep = ~miss
    if not keep.any():
        raise ReportInputError(f"{path}: every row has a missing value in one of the columns {used}.")
    return keep


def _scores(
    raw: dict[str, np.ndarray], keep: np.ndarray, s_cols: list[str], pos_idx: int, path: Path
) -> np.ndarray | None:
    """Scores of the kept rows: ``(N,)`` positive-class or ``(N, C)`` probabilities; ``None`` without score columns."""
    if not s_cols:
        return None
    sc = np.stack([parse_floats(raw[c], path, c)[keep] for c in s_cols], 1)
    bad = (sc < 0) | (sc > 1)
    if bad.any():
        raise ReportInputError(
            f"{path}: score column(s) {s_cols} hold values outside [0, 1] (e.g. {float(sc[bad][0])!r}); "
            "give probabilities (after softmax/sigmoid)."
        )
    return sc[:, 0] if len(s_cols) == 1 else (sc[:, pos_idx] if len(s_cols) == 2 else sc)


def _score_decisions(y_score: np.ndarray, threshold: float | None) -> tuple[np.ndarray, float | None, str]:
    """Predicted class ids from the scores, the threshold used and where the decision came from (in words)."""
    if y_score.ndim == 1:
        threshold_used = 0.5 if threshold is None else float(threshold)
        source = "default 0.5" if threshold is None else f"user (--threshold {threshold_used:g})"
        return (y_score >= threshold_used).astype(np.int64), threshold_used, source
    return y_score.argmax(1).astype(np.int64), None, "argmax of the class probabilities"


def _cluster_ids(cols: dict[str, list[str]], clu_c: str | None, keep: np.ndarray, path: Path) -> np.ndarray | None:
    """Integer cluster (patient) ids of the kept rows, or ``None`` without a cluster column."""
    if clu_c is None:
        return None
    cv = stripped_cells(cols[clu_c])[keep]
    if missing_cells(cv).any():
        i = int(np.flatnonzero(missing_cells(cv))[0])
        raise ReportInputError(f"{path}: empty value in cluster column {clu_c!r} (row {i + 1} after omissions).")
    import pandas as pd

    cluster, _ = pd.factorize(cv, sort=True)  # = np.unique(cv, return_inverse=True): ids in sorted order of the ids
    return cluster.astype(np.int64)


def _column_roles(
    lab_c: str | None,
    s_cols: list[str],
    pr_c: str | None,
    grp_c: str | None,
    id_c: str | None,
    clu_c: str | None,
) -> dict[str, str | list[str]]:
    """Which CSV column fed which role (roles without a column left out)."""
    return {
        k: v
        for k, v in (
            ("label", lab_c),
            ("score", s_cols),
            ("pred", pr_c),
            ("group", grp_c),
            ("id", id_c),
            ("cluster", clu_c),
        )
        if v
    }


def check_unique_ids(path: str | Path, ids: np.ndarray | None, omitted: np.ndarray | None = None) -> None:
    """One :class:`ReportInputError` naming the file and (up to five) case ids that occur more than once among the
    kept and the omitted rows; a case counted twice would inflate ``n`` and every interval's confidence."""
    if ids is None:
        return
    every = np.concatenate([np.asarray(ids, dtype=str), np.asarray(omitted if omitted is not None else [], dtype=str)])
    uniq, counts = np.unique(every, return_counts=True)
    if bool((counts > 1).any()):
        dup = uniq[counts > 1]
        more = f" and {dup.size - 5} more" if dup.size > 5 else ""
        raise ReportInputError(f"{path}: duplicate case id(s) {dup[:5].tolist()}{more}: one row per case.")


def read_prediction_table(
    path: str | Path,
    *,
    label_col: str | None = None,
    score_cols: Sequence[str] | None = None,
    pred_col: str | None = None,
    group_col: str | None = None,
    id_col: str | None = None,
    cluster_col: str | None = None,
    positive_label: str | None = None,
    threshold: float | None = None,
    nan_policy: str = "omit",
    group_aliases: Mapping[str, str] | None = None,
    group_names: Sequence[str] | None = None,
    require_label: bool = True,
    require_group: bool = True,
) -> PredictionTable:
    """Read and validate a classification predictions CSV (see the module docstring for the rules).

    Args:
        path: the CSV file.
        label_col, pred_col, group_col, id_col, cluster_col: column names (``None``: detected, see
            :data:`AUTO_COLUMNS`; ``"none"`` turns off the optional id/cluster columns).
        score_cols: one column (positive-class probability) or one per class; ``None``: the ``prob_*`` columns, or a
            ``score`` column.
        positive_label: the positive class of a binary task, by name (string labels) or id.
        threshold: binary decision threshold on the positive-class score; ``None`` means the default 0.5.
        nan_policy: ``"omit"`` (drop and count rows with a missing value in a used column) or ``"error"``.
        group_aliases: normalised spelling -> group name (see :func:`parse_group_aliases`).
        group_names: names of integer group ids ``0..K-1``.
        require_label, require_group: whether the label / group column must exist.

    Raises:
        ReportInputError: a one-line message naming the file, column, line or value.
    """
    path = Path(path)
    if nan_policy not in ("omit", "error"):
        raise ReportInputError(f"--nan-policy must be 'omit' or 'error', got {nan_policy!r}.")
    header, cols = read_csv_columns(path, numeric=lambda h: _score_columns(h, score_cols, path))
    lab_c = pick_column(header, label_col, "label", path, require_label)
    grp_c = pick_column(header, group_col, "group", path, require_group)
    id_c = pick_column(header, id_col, "id", path, False)
    clu_c = pick_column(header, cluster_col, "cluster", path, False)
    s_cols = _score_columns(header, score_cols, path)
    class_names, num_classes, positive, pos_idx = _classes(s_cols, positive_label, path)
    pr_c = _pred_column(header, pred_col, s_cols, threshold, path)

    n = len(next(iter(cols.values())))
    used = [c for c in (lab_c, grp_c, pr_c, *s_cols) if c is not None]
    raw = {c: stripped_cells(cols[c]) for c in used}
    case_ids = stripped_cells(cols[id_c]) if id_c else None
    keep = _rows_to_keep(raw, used, n, case_ids, path, nan_policy)
    n_omitted = int((~keep).sum())
    y_score = _scores(raw, keep, s_cols, pos_idx, path)

    y = None
    if lab_c is not None:
        y = _class_ids(raw[lab_c][keep], path, lab_c, class_names, positive, num_classes)
    threshold_used: float | None = None
    if pr_c is not None:
        y_pred = _class_ids(raw[pr_c][keep], path, pr_c, class_names, positive, num_classes)
        source = f"predicted labels of column {pr_c!r} (threshold not known)"
    else:
        y_pred, threshold_used, source = _score_decisions(y_score, threshold)  # type: ignore[arg-type]
    if num_classes is None:  # predicted labels only: the classes are the ids seen
        top = int(max(y_pred.max(), y.max() if y is not None else 0))
        class_names = [str(i) for i in range(max(top + 1, 2))]

    group, names = None, []
    if grp_c is not None:
        group, names = group_ids(raw[grp_c][keep], path, grp_c, group_aliases or {}, group_names)
    cluster = _cluster_ids(cols, clu_c, keep, path)
    return PredictionTable(
        path=path,
        y=y,
        y_score=y_score,
        y_pred=y_pred if pr_c is not None else None,
        decisions=y_pred,
        group=group,
        group_names=names,
        case_id=case_ids[keep] if case_ids is not None else None,
        cluster=cluster,
        class_names=class_names,
        threshold=threshold_used,
        threshold_source=source,
        n_omitted=n_omitted,
        omitted_ids=case_ids[~keep] if case_ids is not None else None,
        columns=_column_roles(lab_c, s_cols, pr_c, grp_c, id_c, clu_c),
    )


def group_ids(
    values: np.ndarray, path: Path, col: str, aliases: Mapping[str, str], group_names: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    """Integer group ids and names; values are matched after whitespace/case normalisation and aliases."""
    codes, distinct = _distinct(values)
    if group_names is not None and np.char.isdigit(distinct).all():
        ids = distinct.astype(np.int64)[codes]
        names = [str(n).strip() for n in group_names]
        if ids.max() >= len(names):
            raise ReportInputError(
                f"{path}: group id {int(ids.max())} in column {col!r} has no name in --group-names {names}."
            )
        if len({_norm(n) for n in names}) != len(names):
            raise ReportInputError(f"--group-names {names}: two names differ only in case or spaces.")
        return ids, names
    uniq, inv_distinct = np.unique(distinct, return_inverse=True)
    inv = inv_distinct[codes]
    keys = [_norm(u) for u in uniq.tolist()]
    keys = [_norm(aliases[k]) if k in aliases else k for k in keys]
    display: dict[str, str] = {_norm(v): v for v in aliases.values()}
    counts = np.bincount(inv, minlength=len(uniq))
    spelled: dict[str, Counter] = {}
    for u, k, c in zip(uniq.tolist(), keys, counts.tolist()):
        spelled.setdefault(k, Counter())[" ".join(u.split())] += c
    for k, cnt in spelled.items():
        display.setdefault(k, cnt.most_common(1)[0][0])
    order = sorted(spelled, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, display[k]))
    index = {k: i for i, k in enumerate(order)}
    ids = np.array([index[k] for k in keys], dtype=np.int64)[inv]
    return ids, [display[k] for k in order]
