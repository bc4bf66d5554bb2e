# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Command-line front ends of the data layer: ``python -m monai_fair {datalist,check,synth,adapt}``.

``add_datalist_parser``, ``add_check_parser``, ``add_synth_parser`` and ``add_adapt_parser`` register the
subcommands on the CLI's ``argparse`` subparsers; each sets ``func`` (called with the parsed namespace, returns an
exit code). Module-level imports are standard-library only: MONAI and torch load when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_synth_parser", "add_adapt_parser", "add_datalist_parser", "add_check_parser"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


#: the synthetic generator's per-group options (one value per group): ``--group-*`` of ``synth``
_PER_GROUP_OPTIONS = (
    "group_proportions",
    "group_contrast",
    "group_noise",
    "group_shift",
    "group_difficulty",
    "group_label_noise",
)


def _run_synth(args: argparse.Namespace) -> int:
    from monai_fair.data.synthetic import (
        ensure_synthetic_dataset,
        generate_classification_dataset,
        generate_segmentation_dataset,
    )

    params: dict[str, Any] = {}
    for name in (
        "n_samples",
        "image_size",
        "modality",
        "file_format",
        "seed",
        *_PER_GROUP_OPTIONS,
        "splits",
        "scenario",
        "strength",
    ):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    if args.task == "segmentation" and "group_label_noise" in params:
        raise SystemExit("--group-label-noise applies to --task classification only.")
    if args.force:
        gen = generate_classification_dataset if args.task == "classification" else generate_segmentation_dataset
        path = gen(args.out, **params)
    else:
        path = ensure_synthetic_dataset(args.out, task=args.task, **params)
    print(path)
    return 0


def add_synth_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``synth``: generate the synthetic biased dataset (see ``monai_fair.data.synthetic``)."""
    p = subparsers.add_parser(
        "synth",
        help="generate a synthetic, demographically biased dataset (DICOM/NIfTI + datalist.json)",
        description="Generate a synthetic, demographically biased dataset. Per-group values are given in the "
        "order of group_names (F,M), comma-separated, e.g. --group-contrast 0.4,1.0.",
    )
    p.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n-samples", dest="n_samples", type=int)
    p.add_argument("--image-size", dest="image_size", type=int)
    p.add_argument("--modality", help="dermoscopy|xray (classification), ultrasound|fundus (segmentation)")
    p.add_argument("--file-format", dest="file_format", choices=["dicom", "nifti"])
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--scenario",
        choices=["irreducible", "underrep", "shortcut", "label_noise", "acquisition"],
        help="bias mechanism (default irreducible; see monai_fair.data.synthetic); explicit --group-* values override",
    )
    p.add_argument(
        "--strength", type=float, help="strength of the scenario's mechanism in [0, 1] (default 1; 0 removes it)"
    )
    for name in _PER_GROUP_OPTIONS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=_floats, help="per group F,M")
    p.add_argument("--splits", type=_floats, help="training,validation,test fractions (default 0.7,0.15,0.15)")
    p.add_argument("--force", action="store_true", help="regenerate even if an identical dataset exists")
    p.set_defaults(func=_run_synth)
    return p


def _run_adapt(args: argparse.Namespace) -> int:
    import math

    from monai_fair.data import adapters
    from monai_fair.data.builder import format_split_counts

    fn = adapters.ADAPTERS[args.dataset]
    skip = ("func", "dataset", "command", "min_group_size")
    kwargs = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if "age_bins" in kwargs and math.isfinite(kwargs["age_bins"][-1]):
        kwargs["age_bins"] = [*kwargs["age_bins"], math.inf]  # an open last bin, as `datalist --age-bins`
    try:
        path = fn(**kwargs)
    except (ValueError, KeyError, FileNotFoundError) as e:
        return _user_error(e)
    print(f"wrote {path}")
    print(format_split_counts(path, args.min_group_size))
    return 0


#: each adapter's label policy, shown by ``adapt <dataset> --help`` (and in docs/data.md)
ADAPTER_LABEL_POLICIES = {
    "ham10000": "labels: --label-mode dx (default): the 7 dx classes in the order akiec, bcc, bkl, df, mel, nv, vasc; "
    "--label-mode binary: malignant (akiec, bcc, mel) = 1, benign = 0. Sex 'unknown' and empty ages follow --unknown "
    "(default separate: an 'unknown' group). Images of one lesion_id stay in one split.",
    "fitzpatrick17k": "labels: --label-col three_partition_label (default; benign, malignant, non-neoplastic), "
    "nine_partition_label or label (as in the file, sorted). Skin type -1/empty follows --unknown (default "
    "separate); --grouping binary: types 1-3 light, 4-6 dark; six: one group per type.",
    "isic2019": "labels: the one-hot GroundTruth.csv columns in the order MEL, NV, BCC, AK, BKL, DF, VASC, SCC, "
    "UNK (UNK is empty in the training set). Empty sex/age follow --unknown (default separate). Images of one "
    "lesion stay in one split.",
    "chexpert": "labels: --finding F: binary, class names 'no F' and 'F'; without --finding: 14-label multi-label. "
    "Uncertain (-1): --uncertain ones (default, U-Ones: -1 -> 1), zeros (U-Zeros: -1 -> 0) or ignore (binary: rows "
    "left out; multi-label: kept as -1 for a masked loss). Blank (not mentioned) -> 0. Sex 'Unknown' and missing "
    "ages follow --unknown (default separate). Splits by patient; --valid-metadata becomes the test split.",
    "papila": "labels: Diagnosis 0 healthy, 1 glaucoma; suspects (2) by --suspect: exclude (default), glaucoma, "
    "healthy or class (a third class). Missing gender/age follow --unknown (default separate); both eyes of a "
    "patient stay in one split.",
    "fairseg": "labels: the disc/cup mask of each .npz (--mask cup, disc or rim_cup); the attribute's -1 (Unknown) "
    "follows --unknown (default separate). Training/Test folders are kept; validation is carved out of training.",
}


def add_adapt_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``adapt <dataset>``: turn a public dataset's own metadata into a monai-fair datalist."""
    p = subparsers.add_parser(
        "adapt",
        help="build a datalist.json from a public dataset's metadata files",
        description="Build a monai-fair datalist from a public dataset's own metadata files; print the split x group "
        "x label table (small cells suppressed). `adapt <dataset> --help` states the dataset's label policy.",
    )
    sub = p.add_subparsers(dest="dataset", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="datalist JSON to write")
    common.add_argument(
        "--unknown",
        choices=["separate", "drop", "error"],
        help="a missing/unknown attribute (the datasets' own 'unknown', empty cells): separate (default: an "
        "'unknown' group), drop the rows, or error (list them)",
    )
    common.add_argument("--seed", type=int)
    common.add_argument("--split-fractions", dest="split_fractions", type=_floats)
    common.add_argument("--min-group-size", dest="min_group_size", type=int, default=10, help="suppress smaller counts")
    ages = argparse.ArgumentParser(add_help=False)
    ages.add_argument(
        "--age-bins", dest="age_bins", type=_floats, help="age bin edges, e.g. 0,40,60 (last bin open; default 0,60)"
    )

    def dataset(name: str, help: str, ages_too: bool) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=[common, ages] if ages_too else [common], help=help, description=ADAPTER_LABEL_POLICIES[name]
        )

    a = dataset("ham10000", "HAM10000_metadata.csv", True)
    a.add_argument("--metadata", required=True)
    a.add_argument("--images", required=True, help="folder(s) with ISIC_xxxxxxx.jpg, comma-separated")
    a.add_argument("--label-mode", dest="label_mode", choices=["dx", "binary"])
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = dataset("fitzpatrick17k", "fitzpatrick17k.csv", False)
    a.add_argument("--metadata", required=True)
    a.add_argument("--images", required=True, help="folder with <md5hash>.jpg")
    a.add_argument("--grouping", choices=["binary", "six"])
    a.add_argument("--scale-col", dest="scale_col", choices=["fitzpatrick_scale", "fitzpatrick_centaur"])
    a.add_argument("--label-col", dest="label_col", choices=["label", "nine_partition_label", "three_partition_label"])

    a = dataset("isic2019", "ISIC_2019_Training_Metadata.csv + GroundTruth.csv", True)
    a.add_argument("--metadata", required=True)
    a.add_argument("--ground-truth", dest="ground_truth", required=True)
    a.add_argument("--images", required=True)
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = dataset("chexpert", "CheXpert train.csv / valid.csv", True)
    a.add_argument("--metadata", required=True, help="train.csv")
    a.add_argument("--valid-metadata", dest="valid_metadata", help="valid.csv (becomes the test split)")
    a.add_argument("--root", required=True, help="folder the 'Path' column is relative to")
    a.add_argument("--finding", help="one of the 14 findings (binary task: 'no F' / 'F'); default: multi-label")
    a.add_argument(
        "--uncertain", choices=["ones", "zeros", "ignore"], help="-1 labels: ones (default) / zeros / ignore"
    )
    a.add_argument(
        "--all-views",
        dest="frontal_only",
        action="store_false",
        default=None,
        help="keep lateral views too (default: frontal only)",
    )
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = dataset("papila", "PAPILA ClinicalData (xlsx or CSV exports)", True)
    a.add_argument("--clinical-od", dest="clinical_od", required=True)
    a.add_argument("--clinical-os", dest="clinical_os", required=True)
    a.add_argument("--images", required=True, help="FundusImages folder (RET002OD.jpg ...)")
    a.add_argument("--suspect", choices=["exclude", "glaucoma", "healthy", "class"])
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = dataset("fairseg", "Harvard-FairSeg .npz files", False)
    a.add_argument("--data-dir", dest="data_dir", required=True, help="folder with the .npz files")
    a.add_argument("--image-out", dest="image_out", help="where NIfTI files go (default: next to --out)")
    a.add_argument("--attribute", choices=["race", "gender", "ethnicity", "language", "maritalstatus"])
    a.add_argument("--mask", choices=["cup", "disc", "rim_cup"])
    p.set_defaults(func=_run_adapt)
    return p


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _user_error(e: BaseException) -> int:
    """Print a user mistake as one message, without a traceback; exit code 2."""
    import sys

    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _run_datalist(args: argparse.Namespace) -> int:
    from monai_fair.data.builder import datalist_from_dicom_headers, datalist_from_table, format_split_counts

    common: dict[str, Any] = {
        "image_col": args.image_col,
        "attributes": args.attributes,
        "label_col": args.label_col,
        "mask_col": args.mask_col,
        "positive_label": args.positive_label,
        "label_order": args.label_order,
        "age_bins": args.age_bins,
        "unknown": args.unknown,
        "split_col": args.split_col,
        "split_fractions": args.split_fractions,
        "seed": args.seed,
        "allow_patient_overlap": args.allow_patient_overlap,
        "max_groups": args.max_groups,
    }
    try:
        if args.dicom_dir:
            if args.table or not args.labels:
                raise ValueError("with --dicom-dir give --labels labels.csv (and no table argument).")
            if args.patient_col:
                raise ValueError("--patient-col does not apply to --dicom-dir: PatientID is read from the headers.")
            path = datalist_from_dicom_headers(args.dicom_dir, args.labels, args.out, **common)
        else:
            if not args.table:
                raise ValueError("give a table (CASES.csv) or --dicom-dir DIR --labels labels.csv.")
            path = datalist_from_table(args.table, args.out, patient_col=args.patient_col, **common)
    except (ValueError, KeyError, FileNotFoundError) as e:
        return _user_error(e)
    print(f"wrote {path}")
    print(format_split_counts(path, args.min_group_size))
    _print_notes(path, args.dicom_dir, args.labels)
    return 0


def _print_notes(path: Any, dicom_dir: str | None = None, labels: str | None = None) -> None:
    """What the builder left out or accepted, from the datalist's top-level record (never case-level data)."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    n = (data.get("source") or {}).get("unlabelled_files")
    if n:
        print(f"note: {n} file(s) under {dicom_dir} are not named in {labels} and were left out")
    if data.get("patient_overlap"):
        print(f"warning: {data['patient_overlap']} patient(s) are in more than one given split (allowed explicitly)")
    if data.get("dropped_unknown_attribute"):
        print(
            f"note: {data['dropped_unknown_attribute']} case(s) without an attribute value were dropped "
            "(--unknown drop)"
        )


def add_datalist_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``datalist``: a table or a DICOM folder -> a checked datalist (see ``monai_fair.data.builder``)."""
    p = subparsers.add_parser(
        "datalist",
        help="datalist.json from a table or from DICOM headers",
        description="Build a monai-fair datalist from a CSV table (images: NIfTI, DICOM files or series folders, "
        "PNG/JPEG) or from a DICOM folder whose demographics are in the headers; print per split x group x label "
        "counts (small cells suppressed). Fails, listing every offender, on missing/unreadable images, ambiguous "
        "text labels and splits that would be empty or lack a group.",
    )
    p.add_argument("table", nargs="?", help="CSV with one row per image")
    p.add_argument("--dicom-dir", dest="dicom_dir", help="DICOM folder (attributes from the headers only)")
    p.add_argument("--labels", help="with --dicom-dir: CSV naming each file (relative path or SOPInstanceUID)")
    p.add_argument("--image-col", dest="image_col", default="image", help="image column (default: image)")
    p.add_argument("--label-col", dest="label_col", help="class label column (classification)")
    p.add_argument("--mask-col", dest="mask_col", help="mask path column (segmentation)")
    p.add_argument("--positive-label", dest="positive_label", help="text label of the positive class (-> 1)")
    p.add_argument("--label-order", dest="label_order", type=_names, help="text labels of classes 0,1,...")
    p.add_argument(
        "--attributes",
        type=_names,
        required=True,
        help="attribute columns forming the groups, e.g. sex,age (DICOM: sex, age, ethnic_group, manufacturer, "
        "model, institution)",
    )
    p.add_argument("--age-bins", dest="age_bins", type=_floats, help="age bin edges, e.g. 0,40,60 (last bin open)")
    p.add_argument(
        "--unknown",
        choices=["separate", "drop", "error"],
        default="separate",
        help="missing attribute values: an 'unknown' group (default), drop the rows, or fail",
    )
    p.add_argument("--patient-col", dest="patient_col", help="patient id column (a patient stays in one split)")
    p.add_argument("--split-col", dest="split_col", help="column with train/val/test (otherwise a seeded split)")
    p.add_argument(
        "--allow-patient-overlap",
        dest="allow_patient_overlap",
        action="store_true",
        help="with --split-col: accept a patient in several given splits (default: an error naming them)",
    )
    p.add_argument(
        "--max-groups",
        dest="max_groups",
        type=int,
        default=32,
        help="refuse more non-empty groups than this (default 32; empty combinations are never listed)",
    )
    p.add_argument(
        "--split-fractions",
        dest="split_fractions",
        type=_floats,
        default=[0.7, 0.15, 0.15],
        help="default 0.7,0.15,0.15",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--min-group-size", dest="min_group_size", type=int, default=10, help="suppress smaller counts")
    p.add_argument("--out", required=True, help="datalist JSON to write")
    p.set_defaults(func=_run_datalist)
    return p


def _run_check(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from monai_fair.data.check import DatalistCheckError, check_datalist

    try:
        if not Path(args.datalist).is_file():
            raise FileNotFoundError(f"datalist not found: {args.datalist}")
        task = args.task or json.loads(Path(args.datalist).read_text()).get("task", "classification")
        summary = check_datalist(
            args.datalist,
            task=task,
            spatial_dims=args.spatial_dims,
            in_channels=args.in_channels,
            num_classes=args.num_classes,
            spatial_size=None if args.no_resize else (0,),
            batch_size=args.batch_size,
            verbose=False,
            load_images=not args.headers_only,
            num_workers=args.num_workers,
        )
    except DatalistCheckError as e:
        print(f"error: {e}")
        return 1
    except (ValueError, KeyError, OSError) as e:
        return _user_error(e)
    print(f"{args.datalist}: OK ({task})")
    print(f"  split sizes: {summary['splits']}")
    shapes = list(summary["shapes"].items())
    print(f"  image sizes: {', '.join(f'{s} x{n}' for s, n in shapes[:8])}" + (" ..." if len(shapes) > 8 else ""))
    print(f"  channels: {summary['channels']}")
    for w in summary["warnings"]:
        print(f"  warning: {w}")
    return 0


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``check``: every problem of a datalist's images, labels, groups and splits in one message."""
    p = subparsers.add_parser(
        "check",
        help="check a datalist's files, labels, groups and splits before training",
        description="Read every image header and load every image through the training chain (the same reader "
        "and adaptation transforms, in a worker pool), and report ALL problems (unreadable/truncated files, files "
        "the reader cannot decode, with the reason and the fix; channel count, size, dimensionality, label values, "
        "groups, split sizes) in one message.",
    )
    p.add_argument("datalist")
    p.add_argument("--task", choices=["classification", "segmentation"], help="default: the datalist's 'task'")
    p.add_argument("--spatial-dims", dest="spatial_dims", type=int, default=2)
    p.add_argument("--in-channels", dest="in_channels", type=int, help="the network's input channels")
    p.add_argument("--num-classes", dest="num_classes", type=int, help="classification: labels in 0..N-1")
    p.add_argument(
        "--no-resize", dest="no_resize", action="store_true", help="images are not resized (sizes must match)"
    )
    p.add_argument("--batch-size", dest="batch_size", type=int, default=2)
    p.add_argument(
        "--num-workers", dest="num_workers", type=int, help="processes loading the images (default min(4, CPUs))"
    )
    p.add_argument(
        "--headers-only",
        dest="headers_only",
        action="store_true",
        help="read headers only (fast); by default every image is loaded through the training chain",
    )
    p.set_defaults(func=_run_check)
    return p
