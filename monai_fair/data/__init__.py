# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Data with sensitive attributes: group encoding, datalists, DICOM demographics, synthetic biased data,
public-dataset adapters (:mod:`monai_fair.data.adapters`) and label-bias injection.

The public names are imported on first use (``monai_fair.data.load_fair_datalist`` in a bundle config works as
before), so that ``python -m monai_fair datalist --help`` imports neither torch nor MONAI.
"""

from __future__ import annotations

from monai_fair.utils.lazy import lazy_exports

_EXPORTS = {
    "DicomDemographicsd": "monai_fair.data.dicom",
    "age_from_dates": "monai_fair.data.dicom",
    "parse_dicom_age": "monai_fair.data.dicom",
    "read_dicom_demographics": "monai_fair.data.dicom",
    "write_dicom_image": "monai_fair.data.dicom",
    "write_dicom_series": "monai_fair.data.dicom",
    "GroupAttribute": "monai_fair.data.groups",
    "GroupSpec": "monai_fair.data.groups",
    "is_missing_value": "monai_fair.data.groups",
    "ensure_synthetic_dataset": "monai_fair.data.synthetic",
    "generate_classification_dataset": "monai_fair.data.synthetic",
    "generate_segmentation_dataset": "monai_fair.data.synthetic",
    "synthesize_classification_arrays": "monai_fair.data.synthetic",
    "synthesize_segmentation_arrays": "monai_fair.data.synthetic",
    "write_nifti": "monai_fair.data.synthetic",
    "ITEM_KEYS": "monai_fair.data.datalist",
    "build_fair_datalist": "monai_fair.data.records",
    "check_split_coverage": "monai_fair.data.splits",
    "datalist_from_json": "monai_fair.data.records",
    "encode_labels": "monai_fair.data.labels",
    "load_case_metadata": "monai_fair.data.datalist",
    "load_fair_datalist": "monai_fair.data.datalist",
    "stratified_split": "monai_fair.data.splits",
    "write_fair_datalist": "monai_fair.data.datalist",
    "ImageInfo": "monai_fair.data.image_info",
    "read_image_info": "monai_fair.data.image_info",
    "DatalistCheckError": "monai_fair.data.check",
    "check_datalist": "monai_fair.data.check",
    "MatchChannelsd": "monai_fair.data.transforms",
    "PruneImageMetad": "monai_fair.data.transforms",
    "SqueezeTrailingDimsd": "monai_fair.data.transforms",
    "classification_transforms": "monai_fair.data.transforms",
    "segmentation_transforms": "monai_fair.data.transforms",
    "sliding_window_inferer": "monai_fair.data.transforms",
    "prepare_datalist": "monai_fair.data.bundle_support",
    "require_model": "monai_fair.data.bundle_support",
    "require_spatial_dims": "monai_fair.data.bundle_support",
    "apply_label_bias_to_datalist": "monai_fair.data.label_bias",
    "inject_label_bias": "monai_fair.data.label_bias",
    "GroupBalancedSampler": "monai_fair.data.samplers",
    "group_balance_weights": "monai_fair.data.samplers",
    "group_cell_counts": "monai_fair.data.samplers",
    "datalist_from_table": "monai_fair.data.builder",
    "datalist_from_dicom_headers": "monai_fair.data.builder",
    "find_load_failures": "monai_fair.data.load_check",
    "default_loading_chain": "monai_fair.data.load_check",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
