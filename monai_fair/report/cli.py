# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair report``: the fairness report (and fairness card) from a predictions CSV.

A bundle's inference output needs no column flag (the ``predictions.csv`` convention is detected, see
:mod:`monai_fair.report.predictions`)::

    python -m monai_fair report eval/predictions.csv --out report/

Any other table names its columns::

    python -m monai_fair report preds.csv --label-col finding --positive-label yes --score-col p_yes \\
        --group-col sex --group-alias male=M --group-alias female=F --cluster-col patient --out report/

Segmentation (the pred/label columns hold NIfTI mask paths, relative to the CSV's folder)::

    python -m monai_fair report seg.csv --task segmentation --out report/

User mistakes (a missing file or column, a value that cannot be read) print one line ``error: ...`` naming the
file, column and value, and exit with status 2. Heavy modules are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai_fair.utils.cli import CliOption, add_argument_group, option_values

if TYPE_CHECKING:
    from monai_fair.report.inputs import ReportInputs, ReportOptions

__all__ = [
    "add_compare_parser",
    "add_report_parser",
    "run_compare",
    "run_report",
    "table_read_options",
    "DEFAULT_TOLERANCE",
    "STATISTICS_OPTIONS",
    "TABLE_OPTIONS",
]

#: default tolerance of the verdicts: gaps up to 0.05 (5 percentage points of a rate, 0.05 AUC) are "no disparity"
DEFAULT_TOLERANCE = 0.05


_O = CliOption
#: statistics options of ``report``, ``compare`` and ``trial`` (keywords of :class:`monai_fair.report.ReportOptions`)
STATISTICS_OPTIONS = (
    _O(("--min-group-size",), {"type": int, "default": 10, "help": "groups with fewer cases are suppressed (10)"}),
    _O(("--n-bootstrap",), {"type": int, "default": 1000, "help": "bootstrap replicates of the intervals (1000)"}),
    _O(("--seed",), {"type": int, "default": 0, "help": "bootstrap seed (0)"}),
    _O(("--ci",), {"type": float, "default": 0.95, "help": "confidence level of the intervals (0.95)"}),
    _O(
        ("--stratified-bootstrap",),
        {"action": "store_true", "help": "resample within each group (sizes fixed)"},
    ),
    _O(
        ("--tolerance",),
        {
            "type": float,
            "default": DEFAULT_TOLERANCE,
            "help": f"largest gap that counts as negligible, in the figure's units ({DEFAULT_TOLERANCE})",
        },
    ),
    _O(
        ("--alpha",),
        {"type": float, "default": 0.05, "help": "significance level of the tests behind the verdicts (0.05)"},
    ),
)
#: column and value options of a classification predictions CSV (keywords of ``read_prediction_table``)
TABLE_OPTIONS = (
    _O(("--label-col",), {"default": None, "help": "true label column (default: label)"}),
    _O(
        ("--score-col",),
        {
            "nargs": "+",
            "default": None,
            "help": "positive-class probability column, or one per class (default: the prob_<class> columns, or score)",
        },
        kwarg="score_cols",
    ),
    _O(
        ("--pred-col",),
        {
            "default": None,
            "help": "predicted-label column; by default the scores are thresholded at --threshold (binary) or argmax",
        },
    ),
    _O(("--threshold",), {"type": float, "default": None, "help": "binary decision threshold on the score (0.5)"}),
    _O(("--group-col",), {"default": None, "help": "group column: names or ids 0..K-1 (default: group)"}),
    _O(("--group-names",), {"default": None, "help": "comma-separated names of group ids 0..K-1"}),
    _O(
        ("--group-alias",),
        {
            "action": "append",
            "default": None,
            "metavar": "VALUE=NAME",
            "help": "merge group spellings, e.g. --group-alias male=M (case and spaces are ignored anyway); repeatable",
        },
        kwarg="group_aliases",
    ),
    _O(("--positive-label",), {"default": None, "help": "the positive class of string labels (binary)"}),
    _O(("--id-col",), {"default": None, "help": "case id column (default: case_id/id; 'none' for no ids)"}),
    _O(
        ("--cluster-col",),
        {
            "default": None,
            "help": "patient (cluster) column for the cluster bootstrap (default: patient_id if present; 'none': off)",
        },
    ),
    _O(
        ("--nan-policy",),
        {
            "choices": ["omit", "error"],
            "default": "omit",
            "help": "a row with an empty/NaN value in a used column: drop and count it (omit), or stop naming it",
        },
    ),
)


def table_read_options(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keywords of ``read_prediction_table`` from the parsed :data:`TABLE_OPTIONS` (group names and aliases
    parsed)."""
    from monai_fair.report.predictions import parse_group_aliases

    read = option_values(args, TABLE_OPTIONS, skip=skip)
    read["group_aliases"] = parse_group_aliases(read["group_aliases"])
    read["group_names"] = [n.strip() for n in read["group_names"].split(",")] if read["group_names"] else None
    return read


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object (sets ``func``)."""
    p = subparsers.add_parser(
        "report",
        help="fairness report from a predictions CSV",
        description="Write report.json, report.md, PNG plots and the fairness card (fairness_card.md/.json).",
    )
    p.add_argument("predictions", help="CSV file with one row per case")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--task",
        choices=["classification", "segmentation"],
        default=None,
        help="default: segmentation when the CSV has a dice column, else classification",
    )
    add_argument_group(p, "table columns and values", TABLE_OPTIONS)
    add_argument_group(p, "statistics", STATISTICS_OPTIONS)
    p.add_argument("--attribute", default=None, help="name of the attribute the groups come from (plot titles)")
    p.add_argument("--split", default=None, help="name of the evaluated split (plot titles; default: the file name)")
    p.add_argument(
        "--model", default=None, help="model name for the fairness card (default: the bundle's metadata name)"
    )
    p.add_argument(
        "--record-in-metadata",
        default=None,
        metavar="METADATA_JSON",
        help="also record the headline figures under 'fairness' in this bundle metadata.json (opt-in)",
    )
    p.add_argument("--num-classes", type=int, default=2, help="segmentation: label values 0..C-1 (2: mask > 0)")
    p.add_argument("--include-background", action="store_true", help="segmentation: include label 0 in Dice/IoU")
    p.add_argument(
        "--disclosure-record",
        default=None,
        metavar="JSON",
        help="record of the groupings already released (default: disclosure_record.json beside --out); a report "
        "that would make a hidden group of a recorded one derivable by subtraction is refused",
    )
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=run_report)
    return p


def user_error(message: str) -> int:
    """Print a one-line user error to stderr; the exit status of a user mistake (2)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run_report(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand; returns 0, or 2 after a one-line error for a user mistake."""
    from monai_fair.report.predictions import ReportInputError

    try:
        return _run_report(args)
    except (ReportInputError, FileNotFoundError, ValueError) as e:
        return user_error(str(e))


def _detect_task(path: Path) -> str:
    """``segmentation`` when the CSV's header has a ``dice`` column (the bundles' segmentation predictions.csv)."""
    import csv

    try:
        with path.open(newline="") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
    except OSError:
        return "classification"  # the reader reports the missing file
    return "segmentation" if "dice" in header and not any(h.startswith("prob_") for h in header) else "classification"


def _report_options(args: argparse.Namespace, path: Path) -> ReportOptions:
    """Statistics options of ``report`` shared by both tasks (checked: a one-line error if out of range)."""
    from monai_fair.report.inputs import ReportOptions
    from monai_fair.report.predictions import ReportInputError

    if args.n_bootstrap < 0 or not 0 < args.ci < 1 or args.tolerance < 0 or args.min_group_size < 1:
        raise ReportInputError("--n-bootstrap >= 0, 0 < --ci < 1, --tolerance >= 0 and --min-group-size >= 1.")
    if not 0 < args.alpha < 1:
        raise ReportInputError(f"--alpha must be in (0, 1), got {args.alpha}.")
    return ReportOptions.from_mapping({**option_values(args, STATISTICS_OPTIONS), "split": args.split or path.stem})


def _read_inputs(args: argparse.Namespace, path: Path, task: str) -> tuple[ReportInputs, str | None]:
    """The report's inputs from the CSV (a classification table, or segmentation masks/scores) and the name of
    the group column."""
    read = table_read_options(args)
    if task == "classification":
        from monai_fair.report.predictions import check_unique_ids, read_prediction_table

        t = read_prediction_table(path, **read)
        check_unique_ids(path, t.case_id, t.omitted_ids)
        return t, t.columns.get("group")  # type: ignore[return-value]
    from monai_fair.report.segmentation_masks import read_segmentation_table

    keep = ("label_col", "pred_col", "group_col", "cluster_col", "group_aliases", "group_names", "nan_policy")
    seg = read_segmentation_table(
        path,
        **{k: read[k] for k in keep},
        num_classes=args.num_classes,
        include_background=args.include_background,
    )
    return seg, args.group_col or "group"


def _check_disclosure(args: argparse.Namespace, path: Path, inputs: ReportInputs, options: ReportOptions):
    """Refuse a report whose groups would make a hidden group of a recorded report derivable
    (:mod:`monai_fair.report.disclosure`); the record update to write after the report, or ``None`` (no case ids)."""
    case_ids = getattr(inputs, "case_id", None)
    if case_ids is None:
        return None
    import os

    from monai_fair.report.building import _groups_and_suppression
    from monai_fair.report.disclosure import default_record_path, earlier_releases, load_record, make_release
    from monai_fair.report.predictions import ReportInputError

    record_path = Path(args.disclosure_record) if args.disclosure_record else default_record_path(args.out)
    _, _, names, n_g, hide = _groups_and_suppression(inputs.group, inputs.group_names, options.min_group_size)
    visible = [names[k] for k in range(len(names)) if k not in hide and int(n_g[k]) > 0]
    overall_visible = int(n_g.sum()) >= options.min_group_size
    record = load_record(record_path)
    name = os.path.relpath(Path(args.out).resolve(), record_path.resolve().parent)
    attribute = options.attribute or "group"
    new = make_release(
        record, name, attribute, path.name, options.min_group_size, case_ids, inputs.group, names, visible,
        overall_visible,
    )  # fmt: skip
    earlier, conflicts = earlier_releases(record, new)
    if conflicts:
        raise ReportInputError(
            f"refused: with the reports already released under {record_path} (the disclosure record), "
            f"{'; '.join(conflicts)}. Use the same or a coarser grouping, a larger --min-group-size, or report "
            "on other cases."
        )
    return record_path, record, earlier, new


def _run_report(args: argparse.Namespace) -> int:
    """Write the report and the fairness card, and print the summary (errors propagate to :func:`run_report`)."""
    from dataclasses import replace

    from monai_fair.report.card import find_bundle_metadata, write_fairness_card
    from monai_fair.report.files import write_fairness_report
    from monai_fair.report.markdown import format_report_summary

    path = Path(args.predictions)
    options = _report_options(args, path)
    inputs, group_col = _read_inputs(args, path, args.task or _detect_task(path))
    options = replace(options, attribute=args.attribute or group_col)
    disclosure = _check_disclosure(args, path, inputs, options)
    report = write_fairness_report(args.out, inputs, options, plots=not args.no_plots)
    if disclosure is not None:
        from monai_fair.report.disclosure import write_record

        write_record(*disclosure)
    meta = args.record_in_metadata or find_bundle_metadata(path)
    write_fairness_card(
        args.out,
        report,
        model={"name": args.model} if args.model else None,
        data={"source": path.name},
        metadata_file=meta,
        record_metadata=bool(args.record_in_metadata),
    )
    print(format_report_summary(report))
    print(f"report written to {args.out}")
    return 0


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand (paired model comparison on the same cases; sets ``func``)."""
    from monai_fair.report.seed_compare import add_seed_compare_args

    p = subparsers.add_parser(
        "compare",
        help="paired comparison of models on the same cases",
        description="Compare every OTHER model with BASE on the same cases (matched by case id): differences of "
        "every per-group, gap, worst-group and ES figure with paired CIs, p-values, Holm correction and a verdict. "
        "Writes compare.json, compare.md and a forest plot per comparison.",
        epilog="Seeds: --base a_s0.csv a_s1.csv --other b_s0.csv b_s1.csv [--other c_s0.csv c_s1.csv] compares the "
        "seed-averaged figures, seed-aware interval and test (seed variance + test-set sampling; --seed-pairing)",
    )
    p.add_argument("files", nargs="*", metavar="CSV", help="BASE.csv OTHER.csv [MORE.csv ...] (one seed each)")
    p.add_argument("--base", nargs="+", default=None, metavar="CSV", help="the base model's CSVs (one per seed)")
    p.add_argument(
        "--other", nargs="+", action="append", default=None, metavar="CSV", help="another model's CSVs; repeatable"
    )
    p.add_argument("--names", nargs="+", default=None, help="model names: base first, then the others in order")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--task",
        choices=["classification", "segmentation"],
        default=None,
        help="default: segmentation when the CSVs have a dice column (per-image scores), else classification",
    )
    add_argument_group(p, "table columns and values", TABLE_OPTIONS, skip=("pred_col",))
    add_argument_group(
        p,
        "statistics",
        STATISTICS_OPTIONS,
        skip=("tolerance",),
        overrides={"alpha": {"help": "family-wise error rate of the verdicts (0.05)"}},
    )
    p.add_argument("--no-plots", action="store_true")
    add_seed_compare_args(p)
    p.set_defaults(func=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Run the ``compare`` subcommand; returns 0, or 2 after a one-line error for a user mistake."""
    from monai_fair.report.predictions import ReportInputError

    try:
        return _run_compare(args)
    except (ReportInputError, FileNotFoundError, ValueError) as e:
        return user_error(str(e))


def _run_compare(args: argparse.Namespace) -> int:
    from monai_fair.report.compare import _model_name, compare_prediction_files
    from monai_fair.report.predictions import ReportInputError

    if args.files and (args.base or args.other):
        raise ReportInputError("give either positional CSVs (BASE OTHER ...) or --base/--other, not both.")
    if args.files:
        if len(args.files) < 2:
            raise ReportInputError("compare needs BASE.csv and at least one OTHER.csv.")
        base, others = [args.files[0]], [[f] for f in args.files[1:]]
    else:
        if not args.base or not args.other:
            raise ReportInputError("give --base CSV... and at least one --other CSV... (or positional CSVs).")
        base, others = args.base, args.other
    names = args.names or [_model_name(base)] + [_model_name(o) for o in others]
    if len(names) != 1 + len(others):
        raise ReportInputError(f"--names gives {len(names)} names for {1 + len(others)} models.")
    if len(set(names)) != len(names):
        raise ReportInputError(f"model names {names} are not unique; set them with --names.")
    if args.n_bootstrap < 2 or not 0 < args.ci < 1 or not 0 < args.alpha < 1 or args.min_group_size < 1:
        raise ReportInputError("--n-bootstrap >= 2, 0 < --ci < 1, 0 < --alpha < 1 and --min-group-size >= 1.")
    read = table_read_options(args, skip=("pred_col",))
    task = args.task or _detect_task(Path(base[0]))
    if task == "segmentation":
        read = {
            k: read[k] for k in ("group_col", "id_col", "cluster_col", "nan_policy", "group_aliases", "group_names")
        }
    result = compare_prediction_files(
        args.out,
        base,
        dict(zip(names[1:], others)),
        base_name=names[0],
        task=task,
        read_options=read,
        plots=not args.no_plots,
        **option_values(args, STATISTICS_OPTIONS, skip=("tolerance",)),
        seed_pairing=args.seed_pairing,
    )
    for c in result["comparisons"]:
        v = [f["verdict"] for f in c["figures"]]
        head = [f for f in c["figures"] if f["scope"] != "group" and f["figure"] in ("auc", "dice", "auc_gap",
                "dice_gap", "worst_group_auc", "worst_group_dice", "eodds")]  # fmt: skip
        desc = ", ".join(
            f"{f['figure']} {f['difference']:+.3f} ({f['verdict']})" for f in head if f["difference"] is not None
        )
        print(
            f"{c['other']} vs {names[0]}: {v.count('better')} better, {v.count('worse')} worse, "
            f"{v.count('no evidence')} no evidence; {desc}"
        )
    print(f"compare report written to {args.out}")
    return 0
