# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import json
import math

import numpy as np
import torch

from monai_fair.utils import from_json_safe, to_json_safe


def test_nan_and_inf_become_null_and_back():
    doc = {0: float("nan"), "t": torch.tensor([1.0, float("inf")]), "n": np.float32(0.5), "s": (np.int64(3), "x")}
    safe = to_json_safe(doc)
    text = json.dumps(safe, allow_nan=False)
    assert json.loads(text) == {"0": None, "t": [1.0, None], "n": 0.5, "s": [3, "x"]}
    back = from_json_safe(json.loads(text))
    assert math.isnan(back["0"]) and back["t"][0] == 1.0 and math.isnan(back["t"][1])
