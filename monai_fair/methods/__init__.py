# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The four published methods, one folder each (as MONAI's ``monai/apps/<method>/``):

- :mod:`monai_fair.methods.fairdi`: FairDi, fair distillation from group teachers (classification and segmentation).
- :mod:`monai_fair.methods.snnl`: SNNL channel pruning and the FairPrune baseline.
- :mod:`monai_fair.methods.apple`: APPLE, adversarial latent perturbation of a frozen segmentor.
- :mod:`monai_fair.methods.neural_collapse`: NC1-NC4 per subgroup under label bias.

Nothing is imported here; import the method you use.
"""

from __future__ import annotations
