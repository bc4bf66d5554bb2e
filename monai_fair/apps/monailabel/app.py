# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The monai-fair MONAI Label app: serves and trains monai-fair bundles and exposes their fairness reports.

Start it from an app folder written by ``python -m monai_fair.apps.monailabel init-app``::

    monailabel start_server --app APP_DIR --studies STUDIES_DIR --host 127.0.0.1 --port 8000 \\
        --conf fair_attribute sex --conf fair_categories F,M

Bundles are the sub-folders of ``APP_DIR/model/`` (or ``--conf bundles a,b`` naming some of them, or absolute paths).
Each bundle with ``configs/inference.json`` becomes an inference task (segmentation or classification, from its
``network_data_format``), listed once it has trained weights ``models/model.pt``. Each segmentation bundle whose
``configs/train.json`` has the model-zoo ids MONAI Label trains through
(:data:`~monai_fair.apps.monailabel.bundle_check.MONAILABEL_TRAIN_IDS`) becomes a :class:`FairBundleTrainTask` under
the same name; any other bundle (a classification bundle too: the datastore's labels are label maps) is not listed
as a trainer, and the reason is logged and given under ``trainers_not_listed`` of ``GET /info/``.

``GET /info/`` carries, under ``fairness``, each model's latest fairness report (aggregate numbers only; groups
smaller than ``min_group_size`` are suppressed by the report itself).

Errors of a training or inference request reach the client as an HTTP error with their message (MONAI Label itself
answers a bare "Internal Server Error"): 404 for an unknown model or image, 409 for a model that cannot do what was
asked (no trained weights, not trainable from MONAI Label), 422 when the request failed on its data or the bundle
(e.g. an image without its sensitive attribute); the full traceback stays in the server log.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

import monai_fair
from monai_fair.apps.monailabel.bundle_check import has_trained_model, monailabel_train_problems
from monai_fair.apps.monailabel.infer import FairBundleInferTask
from monai_fair.apps.monailabel.train import REPORT_SUBDIR, FairBundleTrainTask

__all__ = ["FairnessLabelApp", "request_error"]

logger = logging.getLogger(__name__)


class FairnessLabelApp(MONAILabelApp):
    """MONAI Label app over monai-fair bundles (see the module docstring for the configuration keys)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.model_dir = os.path.join(app_dir, "model")
        self.bundles = self._find_bundles(conf.get("bundles"))
        self.trainers_not_listed: dict[str, str] = {}
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
            problems = monailabel_train_problems(path)
            if problems:
                self.trainers_not_listed[name] = "; ".join(problems)
                logger.warning(f"--- Not listing trainer {name} (MONAI Label cannot train it): {'; '.join(problems)}")
                continue
            trainers[name] = FairBundleTrainTask(path, self.conf, task="segmentation")
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
        meta["trainers_not_listed"] = dict(self.trainers_not_listed)
        return meta

    def train(self, request: dict[str, Any]) -> Any:
        """MONAI Label's training, with errors turned into HTTP errors that carry their message (see
        :func:`request_error`)."""
        model = request.get("model")
        if model in self.trainers_not_listed:
            raise HTTPException(
                status_code=409,
                detail=f"model {model!r} cannot be trained from MONAI Label: {self.trainers_not_listed[model]}",
            )
        try:
            return super().train(request)
        except Exception as e:
            raise request_error("training", model, e) from e

    def infer(self, request: dict[str, Any], datastore: Any = None) -> Any:
        """MONAI Label's inference, with errors turned into HTTP errors that carry their message; a bundle without
        trained weights is a 409 saying so, an image id the datastore does not hold a 404."""
        model = request.get("model")
        path = self.bundles.get(model) if isinstance(model, str) else None
        if path is not None and model in self._infers and not has_trained_model(path):
            raise HTTPException(
                status_code=409,
                detail=f"model {model!r} has no trained weights (models/model.pt in {path}): train it first",
            )
        image = request.get("image")
        if path is not None and isinstance(image, str) and not os.path.exists(image):
            store = datastore if datastore is not None else self.datastore()
            if not store.get_image_uri(image):  # MONAI Label would pass "" on and fail reading it
                raise HTTPException(status_code=404, detail=f"image {image!r} not found in the datastore")
        try:
            return super().infer(request, datastore)
        except Exception as e:
            raise request_error("inference", model, e) from e


def request_error(action: str, model: Any, error: Exception) -> HTTPException:
    """The HTTP error a client gets for an exception raised by a training or inference request.

    ``HTTPException`` passes unchanged; image/label not found and an unknown model are 404; other MONAI Label input
    errors 400; anything else raised while running the request (a bad datastore entry, a bundle that fails on this
    data) is 422 with ``"<action> of '<model>' failed: <ExceptionType>: <message>"``. The traceback is logged.
    """
    if isinstance(error, HTTPException):
        return error
    if isinstance(error, (ImageNotFoundException, LabelNotFoundException)):
        return HTTPException(status_code=404, detail=error.msg)
    if isinstance(error, MONAILabelException):
        status = 404 if "no model" in str(error.msg).lower() else 400
        return HTTPException(status_code=status, detail=error.msg)
    logger.exception(f"{action} of {model!r} failed")
    return HTTPException(status_code=422, detail=f"{action} of {model!r} failed: {type(error).__name__}: {error}")
