# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The monai-fair MONAI Label app: serves and trains monai-fair bundles and exposes their fairness reports.

Start it from an app folder written by ``python -m monai_fair.apps.monailabel init-app``::

    monailabel start_server --app APP_DIR --studies STUDIES_DIR --host 127.0.0.1 --port 8000 \\
        --conf fair_attribute sex --conf fair_categories F,M

Bundles are the sub-folders of ``APP_DIR/model/`` (or ``--conf bundles a,b`` naming some of them, or absolute paths).
Each bundle with ``configs/inference.json`` becomes an inference task (segmentation or classification, from its
``network_data_format``); each with ``configs/train.json`` a :class:`FairBundleTrainTask` under the same name.
``GET /info/`` carries, under ``fairness``, each model's latest fairness report (aggregate numbers only; groups
smaller than ``min_group_size`` are suppressed by the report itself).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.train import TrainTask

import monai_fair
from monai_fair.apps.monailabel.infer import FairBundleInferTask
from monai_fair.apps.monailabel.train import REPORT_SUBDIR, FairBundleTrainTask

__all__ = ["FairnessLabelApp"]

logger = logging.getLogger(__name__)


class FairnessLabelApp(MONAILabelApp):
    """MONAI Label app over monai-fair bundles (see the module docstring for the configuration keys)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.model_dir = os.path.join(app_dir, "model")
        self.bundles = self._find_bundles(conf.get("bundles"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai-fair",
            description="Fair segmentation/classification models of monai-fair, with group fairness reports",
            version=monai_fair.__version__,
        )

    def _find_bundles(self, names: str | None) -> dict[str, str]:
        if names:
            paths = [
                n.strip() if os.path.isabs(n.strip()) else os.path.join(self.model_dir, n.strip())
                for n in names.split(",")
                if n.strip()
            ]
        else:
            paths = (
                sorted(os.path.join(self.model_dir, d) for d in os.listdir(self.model_dir))
                if os.path.isdir(self.model_dir)
                else []
            )
        found = {}
        for p in paths:
            if not os.path.isfile(os.path.join(p, "configs", "metadata.json")):
                if names:
                    raise FileNotFoundError(f"bundle {p} has no configs/metadata.json")
                continue
            found[os.path.basename(os.path.normpath(p))] = os.path.realpath(p)
        if not found:
            logger.warning(f"no monai-fair bundle found in {self.model_dir} (conf bundles={names!r})")
        return found

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, path in self.bundles.items():
            if os.path.isfile(os.path.join(path, "configs", "inference.json")):
                infers[name] = FairBundleInferTask(path, self.conf)
                logger.info(f"+++ Adding Inferer:: {name} => {path}")
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers: dict[str, TrainTask] = {}
        for name, path in self.bundles.items():
            if not os.path.isfile(os.path.join(path, "configs", "train.json")):
                continue
            infer = self._infers.get(name)
            kind = "classification" if infer is not None and infer.type == InferType.CLASSIFICATION else "segmentation"
            trainers[name] = FairBundleTrainTask(path, self.conf, task=kind)
            logger.info(f"+++ Adding Trainer:: {name} => {path}")
        return trainers

    def fairness_reports(self) -> dict[str, Any]:
        """Latest fairness report of each bundle (written by its MONAI Label training), without per-image data."""
        reports = {}
        for name, path in self.bundles.items():
            f = os.path.join(path, REPORT_SUBDIR, "report.json")
            if os.path.isfile(f):
                with open(f) as fp:
                    reports[name] = json.load(fp)
        return reports

    def info(self) -> dict[str, Any]:
        meta = super().info()
        meta["fairness"] = self.fairness_reports()
        return meta
