# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label app serving monai-fair bundles (optional extra ``label`` of the monai-fair wheel or checkout).

* :class:`~monai_fair.apps.monailabel.infer.FairBundleInferTask`: inference task for a monai-fair segmentation or
  classification bundle (e.g. APPLE's perturbed segmentor, a FairDi student), read from the bundle's
  ``configs/inference.json`` without MONAI Label's torchvision-dependent post transforms.
* :class:`~monai_fair.apps.monailabel.train.FairBundleTrainTask`: training task whose datalist carries each image's
  demographic group, joined from the datastore's image info (or a CSV) by
  :func:`~monai_fair.apps.monailabel.datalist.fetch_group_datalist`; training writes a fairness report.
* :class:`~monai_fair.apps.monailabel.app.FairnessLabelApp`: the app; ``/info`` carries each model's latest
  fairness report (aggregates only).
* ``python -m monai_fair.apps.monailabel init-app DIR --bundle PATH ...`` writes a ready-to-serve app folder.

The submodules import ``monailabel``; this package ``__init__`` does not, so importing it never needs MONAI Label.
"""

from __future__ import annotations
