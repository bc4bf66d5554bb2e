# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""monai-fair: measure and mitigate demographic bias in MONAI workflows.

Subpackages (import them explicitly; nothing heavy is imported here):

- :mod:`monai_fair.data`: datalists with sensitive attributes, DICOM demographics, synthetic data, adapters.
- :mod:`monai_fair.metrics`: group fairness metrics (functional ``compute_*`` and ``*Metric`` classes).
- :mod:`monai_fair.handlers`: Ignite handlers (group metrics, fairness report, method drivers).
- :mod:`monai_fair.engines`: group-aware MONAI trainers and evaluators.
- :mod:`monai_fair.networks`: generic networks (:class:`~monai_fair.networks.SmallVGGNet`).
- :mod:`monai_fair.methods`: one folder per method (``fairdi``, ``snnl``, ``apple``, ``neural_collapse``) with its
  losses, networks, engines and handlers.
- :mod:`monai_fair.report`: the fairness report (JSON, Markdown, PNG) and its CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"
