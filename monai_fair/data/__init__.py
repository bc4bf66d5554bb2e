# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Data with sensitive attributes: group encoding, datalists, DICOM demographics, synthetic biased data,
public-dataset adapters (:mod:`monai_fair.data.adapters`) and label-bias injection."""

from __future__ import annotations

from monai_fair.data.dicom import (
    DicomDemographicsd,
    age_from_dates,
    parse_dicom_age,
    read_dicom_demographics,
    write_dicom_image,
    write_dicom_series,
)
from monai_fair.data.groups import GroupAttribute, GroupSpec, is_missing_value
from monai_fair.data.synthetic import (
    ensure_synthetic_dataset,
    generate_classification_dataset,
    generate_segmentation_dataset,
    synthesize_classification_arrays,
    synthesize_segmentation_arrays,
    write_nifti,
)
from monai_fair.data.datalist import (
    ITEM_KEYS,
    build_fair_datalist,
    check_split_coverage,
    datalist_from_json,
    encode_labels,
    load_case_metadata,
    load_fair_datalist,
    stratified_split,
    write_fair_datalist,
)
from monai_fair.data.image_info import ImageInfo, read_image_info
from monai_fair.data.check import DatalistCheckError, check_datalist
from monai_fair.data.transforms import (
    MatchChannelsd,
    PruneImageMetad,
    SqueezeTrailingDimsd,
    classification_transforms,
    segmentation_transforms,
    sliding_window_inferer,
)
from monai_fair.data.bundle_support import prepare_datalist, require_model
from monai_fair.data.label_bias import apply_label_bias_to_datalist, inject_label_bias
from monai_fair.data.samplers import GroupBalancedSampler, group_balance_weights, group_cell_counts
