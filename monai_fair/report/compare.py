# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The compare report: paired comparison of models scored on the same cases (``compare.json``, ``compare.md``, PNGs).

``python -m monai_fair compare BASE.csv OTHER.csv [MORE.csv ...] --out DIR`` compares every OTHER with BASE;
``--base a_s0.csv a_s1.csv --other b_s0.csv b_s1.csv [--other c_s0.csv ...]`` gives several training seeds per model.
Each CSV follows the ``predictions.csv`` convention (:mod:`monai_fair.report.predictions`; columns can be named), or,
for segmentation, has per-image ``dice`` (and optionally ``iou``) columns. Cases are matched by case id; a file whose
ids differ from BASE's is a one-line error listing the unmatched ids.

The statistics are :func:`monai_fair.metrics.compare_models` (paired DeLong for AUC, paired case/cluster bootstrap
otherwise, seeds combined as the difference of seed-averaged figures, seed spread beside it). With several OTHER
models, Holm's correction runs across every figure of every comparison (one family), and each figure's verdict
(better / worse / no evidence) uses the family-wise adjusted p-value. Suppression: only groups reported by the
metric core appear (``min_group_size`` with the secondary rule); suppressed groups are counted, never named.

Library use (e.g. the fairness trial)::

    result = compare_prediction_files(out_dir, ["erm_s0.csv", "erm_s1.csv"], {"fairdi": ["fd_s0.csv", "fd_s1.csv"]})
    result = compare_arrays(y, group, base_scores, {"fairdi": [s0, s1]}, group_names=["F", "M"])
    write_compare_report(out_dir, result)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.metrics.figures import get_figure
from monai_fair.report.predictions import (
    PredictionTable,
    ReportInputError,
    check_unique_ids,
    group_ids,
    missing_cells,
    parse_floats,
    pick_column,
    read_csv_columns,
    read_prediction_table,
    stripped_cells,
)

__all__ = [
    "COMPARE_VERDICTS",
    "compare_arrays",
    "compare_prediction_files",
    "compare_tables",
    "format_compare_markdown",
    "write_compare_report",
]

COMPARE_VERDICTS = ("better", "worse", "no evidence", "undefined")


def _plotted(key: str) -> bool:
    """Whether the forest plot shows a per-group figure (the registry's ``plotted``; the JSON and Markdown hold
    every figure)."""
    f = get_figure(key)
    return f is not None and f.plotted


def _verdict(direction: str, diff: float | None, p_holm: float | None, alpha: float) -> str:
    """better/worse (direction-aware) when the Holm-adjusted p-value is below ``alpha``, else "no evidence"."""
    if p_holm is None or diff is None or not p_holm < alpha:
        return "no evidence"
    if direction == "none":
        return "higher" if diff > 0 else "lower"
    return "better" if (diff > 0) == (direction == "higher") else "worse"


def compare_arrays(
    y: Any,
    group: Any,
    base_scores: Any,
    others: Mapping[str, Any],
    *,
    group_names: Sequence[str] | None = None,
    task: str = "classification",
    base_name: str = "base",
    base_iou: Any = None,
    others_iou: Mapping[str, Any] | None = None,
    cluster: Any = None,
    threshold: float = 0.5,
    threshold_source: str = "default 0.5",
    min_group_size: int = 10,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    stratified_bootstrap: bool = False,
    files: Mapping[str, Sequence[str]] | None = None,
    n_omitted: int = 0,
    seed_pairing: str = "independent",
) -> dict[str, Any]:
    """Compare every model in ``others`` with the base model on the same cases (one Holm family over all).

    Args:
        y: ``(N,)`` labels (classification; ``None`` for segmentation).
        group: ``(N,)`` group ids; ``group_names`` names them.
        base_scores: the base model's scores, or a list of per-seed scores (classification: ``(N,)`` positive-class
            or ``(N, C)`` probabilities; segmentation: ``(N,)`` per-image Dice).
        others: model name -> scores (same layout as ``base_scores``).
        task: ``"classification"`` or ``"segmentation"``.
        base_name: name of the base model in the report.
        base_iou, others_iou: per-image IoU (segmentation, optional; same layout).
        cluster: ``(N,)`` patient ids (paired cluster bootstrap, cluster-robust DeLong).
        threshold, threshold_source: binary decision threshold and where it came from (stated in the report).
        min_group_size, n_bootstrap, ci, alpha, seed, stratified_bootstrap: see
            :func:`monai_fair.metrics.compare_models`.
        files: model name -> the files it was read from (recorded).
        n_omitted: cases left out for a missing value (recorded).
        seed_pairing: several seeds per side: ``"independent"`` or ``"paired"`` (:mod:`monai_fair.report.seed_compare`).

    Returns:
        ``{"base", "task", "n_cases", "threshold", "ci_level", "alpha", "multiple_testing", "comparisons": [...]}``;
        each comparison is the :func:`~monai_fair.metrics.compare_models` result with ``"other"`` (its name), and
        ``p_holm``/``verdict`` of every figure adjusted over all comparisons.
    """
    from monai_fair.metrics import compare_models, holm_adjust

    if not others:
        raise ReportInputError("compare needs at least one model to compare with the base.")
    comparisons = []
    for name, scores in others.items():
        res = compare_models(
            y,
            group,
            base_scores,
            scores,
            task=task,
            cluster=cluster,
            group_names=group_names,
            threshold=threshold,
            base_iou=base_iou,
            other_iou=(others_iou or {}).get(name),
            min_group_size=min_group_size,
            n_bootstrap=n_bootstrap,
            ci=ci,
            alpha=alpha,
            seed=seed,
            stratified_bootstrap=stratified_bootstrap,
            seed_pairing=seed_pairing,
        )
        res["other"] = name
        comparisons.append(res)
    figs = [f for c in comparisons for f in c["figures"]]
    adj = holm_adjust([np.nan if f["p_value"] is None else f["p_value"] for f in figs])
    for f, pa in zip(figs, adj):
        f["p_holm"] = None if np.isnan(pa) else float(pa)
        f["verdict"] = (
            "undefined" if f.get("undefined") else _verdict(f["direction"], f["difference"], f["p_holm"], alpha)
        )
    family = int(np.isfinite(adj).sum())
    for c in comparisons:
        c["multiple_testing"] = {"method": "holm", "family_size": family, "across": "all comparisons"}
    first = comparisons[0]
    counts = np.bincount(np.asarray(group, dtype=np.int64).reshape(-1))
    shown = sorted({f["group"] for f in first["figures"] if f["scope"] == "group" and f["group"] is not None})
    gname = lambda k: str(group_names[k]) if group_names is not None and k < len(group_names) else str(k)  # noqa: E731
    return {
        "base": base_name,
        "task": task,
        "n_cases": first["n_cases"],
        "n_omitted": int(n_omitted),
        "threshold": {"value": threshold, "source": threshold_source} if task == "classification" else None,
        "ci_level": float(ci),
        "alpha": float(alpha),
        "min_group_size": int(min_group_size),
        "suppression": first["suppression"],
        "groups": {gname(k): int(counts[k]) for k in shown},
        "multiple_testing": {"method": "holm", "family_size": family, "across": "all comparisons"},
        "files": {k: list(v) for k, v in (files or {}).items()},
        "comparisons": comparisons,
    }


def _read_segmentation_scores(path: Path, opts: Mapping[str, Any]) -> PredictionTable:
    """A segmentation table with per-image ``dice`` (and optional ``iou``) columns, as a :class:`PredictionTable`
    whose ``y_score`` holds Dice and ``y_pred`` IoU (or ``None``)."""
    header, cols = read_csv_columns(path, numeric=("dice", "iou"))
    grp_c = pick_column(header, opts.get("group_col"), "group", path, True)
    id_c = pick_column(header, opts.get("id_col"), "id", path, True)
    clu_c = pick_column(header, opts.get("cluster_col"), "cluster", path, False)
    used = [c for c in ("dice", "iou") if c in header]
    raw = {c: stripped_cells(cols[c]) for c in [grp_c, *used]}
    miss = np.zeros(len(cols[id_c]), dtype=bool)
    for c, v in raw.items():
        m = missing_cells(v)
        if m.any() and opts.get("nan_policy", "omit") == "error":
            raise ReportInputError(f"{path}, line {int(np.flatnonzero(m)[0]) + 2}: column {c!r} is empty or NaN.")
        miss |= m
    keep = ~miss
    ids = stripped_cells(cols[id_c])
    group, names = group_ids(raw[grp_c][keep], path, grp_c, opts.get("group_aliases") or {}, opts.get("group_names"))
    cluster = None
    if clu_c is not None:
        _, cluster = np.unique(stripped_cells(cols[clu_c])[keep], return_inverse=True)
    return PredictionTable(
        path=path,
        y=None,
        y_score=parse_floats(raw["dice"], path, "dice")[keep],
        y_pred=parse_floats(raw["iou"], path, "iou")[keep] if "iou" in used else None,
        group=group,
        group_names=names,
        case_id=ids[keep],
        cluster=cluster,
        class_names=[],
        threshold=None,
        threshold_source="",
        n_omitted=int(miss.sum()),
        columns={"group": grp_c, "id": id_c, "score": used},
        omitted_ids=ids[miss],
    )


def _read(path: str | Path, task: str, opts: Mapping[str, Any]) -> PredictionTable:
    path = Path(path)
    if task == "segmentation":
        return _read_segmentation_scores(path, opts)
    t = read_prediction_table(path, **{k: v for k, v in opts.items() if k != "task"})
    if t.case_id is None:
        raise ReportInputError(f"{path}: no case id column (looked for case_id, id, ...); name it with --id-col.")
    if t.y_score is None:
        raise ReportInputError(f"{path}: compare needs class probabilities (prob_<class> or --score-col columns).")
    return t


def _align(tables: dict[str, list[PredictionTable]]) -> tuple[np.ndarray, int]:
    """The case ids common to every file (base order) after omissions; errors list ids that do not match."""
    first = next(iter(tables.values()))[0]
    all_base = set(first.case_id.tolist()) | set((first.omitted_ids if first.omitted_ids is not None else []).tolist())
    for ts in tables.values():
        for t in ts:
            check_unique_ids(t.path, t.case_id)
            ids = t.case_id.tolist()
            every = set(ids) | set((t.omitted_ids if t.omitted_ids is not None else []).tolist())
            extra, missing = sorted(every - all_base), sorted(all_base - every)
            if extra or missing:
                parts = []
                if extra:
                    parts.append(f"{len(extra)} id(s) not in {first.path.name}: {', '.join(extra[:8])}")
                if missing:
                    parts.append(f"{len(missing)} id(s) of {first.path.name} missing: {', '.join(missing[:8])}")
                raise ReportInputError(f"{t.path}: cases do not match ({'; '.join(parts)}).")
    keep = set(first.case_id.tolist())
    omitted: set[str] = set()
    for ts in tables.values():
        for t in ts:
            keep &= set(t.case_id.tolist())
            if t.omitted_ids is not None:
                omitted |= set(t.omitted_ids.tolist())
    order = np.array([i for i in first.case_id.tolist() if i in keep])
    return order, len(omitted)


def _take(t: PredictionTable, order: np.ndarray) -> np.ndarray:
    pos = {c: i for i, c in enumerate(t.case_id.tolist())}
    return np.array([pos[c] for c in order.tolist()], dtype=np.int64)


def compare_tables(
    base: Sequence[PredictionTable], others: Mapping[str, Sequence[PredictionTable]], *, base_name: str, **kwargs: Any
) -> dict[str, Any]:
    """Match the tables by case id, check that labels and groups agree, and run :func:`compare_arrays`."""
    task = kwargs.get("task", "classification")
    tables = {base_name: list(base), **{k: list(v) for k, v in others.items()}}
    order, n_omitted = _align(tables)
    ref = base[0]
    idx = _take(ref, order)
    names = ref.group_names
    ref_groups = np.asarray(names, dtype=object)[ref.group[idx]]
    ref_y = ref.y[idx] if ref.y is not None else None
    cols: dict[str, list[np.ndarray]] = {}
    ious: dict[str, list[np.ndarray]] = {}
    for name, ts in tables.items():
        for t in ts:
            j = _take(t, order)
            g = np.asarray(t.group_names, dtype=object)[t.group[j]]
            bad = np.flatnonzero(np.char.lower(g.astype(str)) != np.char.lower(ref_groups.astype(str)))
            if bad.size:
                raise ReportInputError(
                    f"{t.path}: case {str(order[bad[0]])!r} has group {g[bad[0]]!r} but {ref_groups[bad[0]]!r} in "
                    f"{ref.path.name} ({bad.size} such cases)."
                )
            if ref_y is not None and t.y is not None and not np.array_equal(t.y[j], ref_y):
                k = int(np.flatnonzero(t.y[j] != ref_y)[0])
                raise ReportInputError(f"{t.path}: case {str(order[k])!r} has another label than in {ref.path.name}.")
            cols.setdefault(name, []).append(t.y_score[j])
            if task == "segmentation" and t.y_pred is not None:
                ious.setdefault(name, []).append(t.y_pred[j])
    score_shapes = {c.shape[1:] for v in cols.values() for c in v}
    if len(score_shapes) > 1:
        raise ReportInputError(f"the files have different numbers of score columns {sorted(score_shapes)}.")
    group = ref.group[idx]
    cluster = ref.cluster[idx] if ref.cluster is not None else None
    files = {name: [str(t.path) for t in ts] for name, ts in tables.items()}
    seg_iou = task == "segmentation" and all(name in ious and len(ious[name]) == len(cols[name]) for name in tables)
    return compare_arrays(
        ref_y,
        group,
        cols[base_name],
        {k: cols[k] for k in others},
        group_names=names,
        base_name=base_name,
        base_iou=ious[base_name] if seg_iou else None,
        others_iou={k: ious[k] for k in others} if seg_iou else None,
        cluster=cluster,
        threshold=ref.threshold if ref.threshold is not None else 0.5,
        threshold_source=ref.threshold_source or "default 0.5",
        files=files,
        n_omitted=n_omitted,
        **{k: v for k, v in kwargs.items() if k != "task"},
        task=task,
    )


def _model_name(paths: Sequence[str | Path]) -> str:
    stems = [Path(p).stem for p in paths]
    if len(stems) == 1:
        return stems[0]
    import os

    prefix = re.sub(r"[_\-. ]*(seed|s)?$", "", os.path.commonprefix(stems))  # "erm_s0", "erm_s1" -> "erm"
    return prefix or stems[0]


def compare_prediction_files(
    out_dir: str | Path | None,
    base: Sequence[str | Path],
    others: Mapping[str, Sequence[str | Path]] | Sequence[Sequence[str | Path]],
    *,
    base_name: str | None = None,
    task: str = "classification",
    read_options: Mapping[str, Any] | None = None,
    plots: bool = True,
    **stats: Any,
) -> dict[str, Any]:
    """Read prediction CSVs (one or several seeds per model), compare every other model with the base, and write
    the compare report to ``out_dir`` (when given).

    Args:
        out_dir: output folder (``None``: write nothing).
        base: the base model's CSV files (one per seed).
        others: model name -> CSV files, or a list of file lists (named after the files' common prefix).
        base_name: name of the base model (default: from its file names).
        task: ``"classification"`` (``predictions.csv`` convention) or ``"segmentation"`` (``dice``/``iou`` columns).
        read_options: column options of :func:`monai_fair.report.predictions.read_prediction_table` (``label_col``,
            ``score_cols``, ``group_col``, ``id_col``, ``cluster_col``, ``positive_label``, ``threshold``,
            ``nan_policy``, ``group_aliases``, ``group_names``).
        plots: write the forest plots.
        stats: :func:`compare_arrays` options (``min_group_size``, ``n_bootstrap``, ``ci``, ``alpha``, ``seed``,
            ``stratified_bootstrap``).
    """
    opts = dict(read_options or {})
    if not isinstance(others, Mapping):
        others = {_model_name(fs): fs for fs in others}
    base_name = base_name or _model_name(base)
    if base_name in others:
        raise ReportInputError(f"model name {base_name!r} is used twice; name the models explicitly.")
    b = [_read(p, task, opts) for p in base]
    o = {k: [_read(p, task, opts) for p in v] for k, v in others.items()}
    result = compare_tables(b, o, base_name=base_name, task=task, **stats)
    if out_dir is not None:
        write_compare_report(out_dir, result, plots=plots)
    return result


def _label(f: Mapping[str, Any]) -> str:
    from monai_fair.report.glossary import readable_name

    name = readable_name(f["figure"])
    if f["scope"] == "group":
        return f"{name} ({f['group_name'] if f.get('group_name') is not None else f['group']})"
    return f"{name} (overall)" if f["scope"] == "overall" else name


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def format_compare_markdown(result: Mapping[str, Any]) -> str:
    """``compare.md``: context, one table per comparison (difference, CI, p, Holm p, verdict, CI method), glossary."""
    from monai_fair.report.glossary import glossary_lines
    from monai_fair.report.seed_compare import seed_compare_lines

    lines = [f"# Paired comparison with {result['base']} ({result['task']})", ""]
    lines.append(f"- Cases: {result['n_cases']} matched by case id" + (
        f" ({result['n_omitted']} left out for a missing value)" if result.get("n_omitted") else ""
    ) + ".")  # fmt: skip
    th = result.get("threshold")
    if th:
        lines.append(f"- Decision threshold: {_fmt(th['value'])} (source: {th['source']}).")
    sup = result.get("suppression") or {}
    groups = result.get("groups") or {}
    lines.append("- Groups (after suppression): " + (", ".join(f"{k} (n={v})" for k, v in groups.items()) or "none"))
    lines.append(
        f"- Suppression: groups with n < {result['min_group_size']} hidden with secondary suppression; "
        f"hidden groups: {sup.get('suppressed_groups', 0)}."
    )
    mt = result["multiple_testing"]
    lines.append(
        f"- Differences are other − base of the seed-averaged figures; {int(round(100 * result['ci_level']))}% "
        f"paired CIs; p-values Holm-adjusted across all {mt['family_size']} tested figures of all comparisons; "
        f"verdict: better/worse when the adjusted p < {result['alpha']:g} (direction-aware), else no evidence."
    )
    keys: list[str] = []
    for c in result["comparisons"]:
        lines += ["", f"## {c['other']} vs {result['base']}", ""]
        ns = c.get("n_seeds", {})
        lines.append(f"Seeds: base {ns.get('base', 1)}, {c['other']} {ns.get('other', 1)}.")
        verdicts = [f["verdict"] for f in c["figures"]]
        lines.append(
            "Verdicts: "
            + ", ".join(f"{v} {verdicts.count(v)}" for v in COMPARE_VERDICTS if v != "undefined" or v in verdicts)
            + "."
        )
        lines += [f"- undefined: {_label(f)}: {f['undefined']}." for f in c["figures"] if f.get("undefined")]
        lines += [
            "",
            "| figure | base | other | difference | CI | p | p (Holm) | verdict | seed sd (base / other) | CI method |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in c["figures"]:
            keys.append(f["figure"])
            ci = f.get("ci") or [None, None]
            sd = f"{_fmt(f.get('base_seed_sd'))} / {_fmt(f.get('other_seed_sd'))}"
            lines.append(
                f"| {_label(f)} | {_fmt(f['base'])} | {_fmt(f['other'])} | {_fmt(f['difference'])} | "
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(f['p_value'])} | {_fmt(f.get('p_holm'))} | "
                f"{f['verdict']} | {sd} | {f.get('ci_method') or ''} |"
            )
    lines += seed_compare_lines(result) + ["", "## Glossary", ""] + glossary_lines(keys)
    return "\n".join(lines) + "\n"


def write_compare_report(out_dir: str | Path, result: dict[str, Any], plots: bool = True) -> dict[str, Any]:
    """Write ``compare.json``, ``compare.md`` and one forest plot per comparison (``compare_<other>.png``)."""
    from monai_fair.report.plots import plot_forest
    from monai_fair.utils.serialization import to_json_safe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ["compare.json", "compare.md"]
    if plots:
        for c in result["comparisons"]:
            rows = []
            for f in c["figures"]:
                if f["scope"] == "group" and not _plotted(f["figure"]):
                    continue
                ci = f.get("ci") or [None, None]
                note = f"{f['verdict']} (p {_fmt(f.get('p_value'), 2)}, Holm {_fmt(f.get('p_holm'), 2)})"
                rows.append((_label(f), f["difference"], ci[0], ci[1], note))
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in c["other"])
            name = f"compare_{safe}.png"
            plot_forest(
                rows,
                out / name,
                f"{c['other']} − {result['base']}: paired differences, {int(round(100 * result['ci_level']))}% CI"
                + ("\n" + ", ".join(f"{k} (n={v})" for k, v in (result.get("groups") or {}).items())),
                "difference (other − base); lower is better for gaps, FPR, EOdds, DP",
                empty_message="no figure can be compared (every group suppressed?)",
            )
            files.append(name)
    result = to_json_safe({**result, "files": files})
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    (out / "compare.md").write_text(format_compare_markdown(result))
    return result
