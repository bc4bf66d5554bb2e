# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Command-line front ends of the data layer: ``python -m monai_fair synth`` and ``python -m monai_fair adapt``.

``add_synth_parser(subparsers)`` and ``add_adapt_parser(subparsers)`` register the subcommands on the CLI's
``argparse`` subparsers; each sets ``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_synth_parser", "add_adapt_parser"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


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
        "group_proportions",
        "group_contrast",
        "group_noise",
        "group_shift",
        "group_difficulty",
        "group_label_noise",
        "splits",
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
    for name in (
        "group_proportions",
        "group_contrast",
        "group_noise",
        "group_shift",
        "group_difficulty",
        "group_label_noise",
    ):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=_floats, help="per group F,M")
    p.add_argument("--splits", type=_floats, help="training,validation,test fractions (default 0.7,0.15,0.15)")
    p.add_argument("--force", action="store_true", help="regenerate even if an identical dataset exists")
    p.set_defaults(func=_run_synth)
    return p


def _run_adapt(args: argparse.Namespace) -> int:
    from monai_fair.data import adapters

    fn = adapters.ADAPTERS[args.dataset]
    kwargs = {k: v for k, v in vars(args).items() if k not in ("func", "dataset", "command") and v is not None}
    path = fn(**kwargs)
    print(path)
    return 0


def add_adapt_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``adapt <dataset>``: turn a public dataset's own metadata into a monai-fair datalist."""
    p = subparsers.add_parser(
        "adapt",
        help="build a datalist.json from a public dataset's metadata files",
        description="Build a monai-fair datalist from a public dataset's own metadata files.",
    )
    sub = p.add_subparsers(dest="dataset", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="datalist JSON to write")
    common.add_argument("--unknown", choices=["error", "drop", "separate"], help="missing-attribute policy")
    common.add_argument("--seed", type=int)
    common.add_argument("--split-fractions", dest="split_fractions", type=_floats)

    a = sub.add_parser("ham10000", parents=[common], help="HAM10000_metadata.csv")
    a.add_argument("--metadata", required=True)
    a.add_argument("--images", required=True, help="folder(s) with ISIC_xxxxxxx.jpg, comma-separated")
    a.add_argument("--label-mode", dest="label_mode", choices=["dx", "binary"])
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = sub.add_parser("fitzpatrick17k", parents=[common], help="fitzpatrick17k.csv")
    a.add_argument("--metadata", required=True)
    a.add_argument("--images", required=True, help="folder with <md5hash>.jpg")
    a.add_argument("--grouping", choices=["binary", "six"])
    a.add_argument("--scale-col", dest="scale_col", choices=["fitzpatrick_scale", "fitzpatrick_centaur"])
    a.add_argument("--label-col", dest="label_col", choices=["label", "nine_partition_label", "three_partition_label"])

    a = sub.add_parser("isic2019", parents=[common], help="ISIC_2019_Training_Metadata.csv + GroundTruth.csv")
    a.add_argument("--metadata", required=True)
    a.add_argument("--ground-truth", dest="ground_truth", required=True)
    a.add_argument("--images", required=True)
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = sub.add_parser("chexpert", parents=[common], help="CheXpert train.csv / valid.csv")
    a.add_argument("--metadata", required=True, help="train.csv")
    a.add_argument("--valid-metadata", dest="valid_metadata", help="valid.csv (becomes the test split)")
    a.add_argument("--root", required=True, help="folder the 'Path' column is relative to")
    a.add_argument("--finding", help="one of the 14 findings (binary task); default: multi-label")
    a.add_argument("--uncertain", choices=["ones", "zeros", "ignore"])
    a.add_argument(
        "--all-views",
        dest="frontal_only",
        action="store_false",
        default=None,
        help="keep lateral views too (default: frontal only)",
    )
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = sub.add_parser("papila", parents=[common], help="PAPILA ClinicalData (xlsx or CSV exports)")
    a.add_argument("--clinical-od", dest="clinical_od", required=True)
    a.add_argument("--clinical-os", dest="clinical_os", required=True)
    a.add_argument("--images", required=True, help="FundusImages folder (RET002OD.jpg ...)")
    a.add_argument("--suspect", choices=["exclude", "glaucoma", "healthy", "class"])
    a.add_argument("--attribute", choices=["sex", "age", "sex_age"])

    a = sub.add_parser("fairseg", parents=[common], help="Harvard-FairSeg .npz files")
    a.add_argument("--data-dir", dest="data_dir", required=True, help="folder with the .npz files")
    a.add_argument("--image-out", dest="image_out", help="where NIfTI files go (default: next to --out)")
    a.add_argument("--attribute", choices=["race", "gender", "ethnicity", "language", "maritalstatus"])
    a.add_argument("--mask", choices=["cup", "disc", "rim_cup"])
    p.set_defaults(func=_run_adapt)
    return p
