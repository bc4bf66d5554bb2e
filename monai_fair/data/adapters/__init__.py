# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Adapters that turn public datasets' own metadata files into monai-fair datalists (one file per dataset)."""

from __future__ import annotations

from monai_fair.data.adapters.chexpert import CHEXPERT_FINDINGS, chexpert_datalist
from monai_fair.data.adapters.fairseg import FAIRSEG_CODES, fairseg_datalist
from monai_fair.data.adapters.fitzpatrick17k import fitzpatrick17k_datalist
from monai_fair.data.adapters.ham10000 import HAM10000_CLASSES, ham10000_datalist
from monai_fair.data.adapters.isic2019 import ISIC2019_CLASSES, isic2019_datalist
from monai_fair.data.adapters.papila import papila_datalist, read_papila_sheet

ADAPTERS = {
    "ham10000": ham10000_datalist,
    "fitzpatrick17k": fitzpatrick17k_datalist,
    "isic2019": isic2019_datalist,
    "chexpert": chexpert_datalist,
    "papila": papila_datalist,
    "fairseg": fairseg_datalist,
}
