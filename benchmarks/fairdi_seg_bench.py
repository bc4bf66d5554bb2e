# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi vs ERM, and FIS stage 0 alone, for segmentation: the segmentation sibling of ``fairdi_bench.py``.

The same arms and the same code path (the ``fairdi_segmentation`` bundle's own configs through
``python -m monai.bundle run``), on monai-fair's synthetic segmentation data (300 ultrasound-like 64x64 images,
group F 20 % and harder); ERM is stage 0 with MONAI's ``DiceCELoss``. Figures: per-case Dice of the test split per
group, worst-group Dice, Dice gap, ES-Dice; stage costs.

Run::

    python benchmarks/fairdi_seg_bench.py --seeds 0 1 2 --epochs 30 --teacher-epochs 15 --out docs/benchmarks
"""

from __future__ import annotations

from fairdi_bench import NOTES, PAIRS, merge, parser, run_task
from harness import run_benchmark

if __name__ == "__main__":
    cli = parser(__doc__).parse_args()
    if cli.merge:
        merge(cli.merge, cli.out, "fairdi_seg_results")
    else:
        run_benchmark(
            "fairdi_seg_results", lambda seed, a: run_task(seed, a, "segmentation"), cli, pairs=PAIRS, notes=NOTES
        )
