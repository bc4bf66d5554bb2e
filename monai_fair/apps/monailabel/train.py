# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label training task for a monai-fair bundle, with each image's sensitive attribute in the datalist.

MONAI Label's ``BundleTrainTask._fetch_datalist`` keeps only ``image`` and ``label`` of every datastore item. This
subclass joins the group of each image (datastore image info and/or a CSV, see
:func:`monai_fair.apps.monailabel.datalist.fetch_group_datalist`) and passes the bundle:

* ``train#dataset#data`` / ``validate#dataset#data``: the items with their ``group``;
* ``datalist``: a monai-fair datalist file with both splits and the group names (so every bundle id derived from
  ``@datalist``, e.g. ``group_names``, follows the datastore and no synthetic data is generated);
* ``group_names``: the group names;
* ``min_group_size``: the app's ``fair_min_group_size`` (when the bundle has that id), so that the bundle's own group
  metrics suppress small groups as the report does;
* a :class:`monai_fair.handlers.FairnessReportHandler` appended to ``validate#handlers`` (unless the bundle has one),
  writing the report of the last validation to ``<bundle>/eval/monailabel/`` (served by the app's ``/info``);
* for a standard bundle whose ``validate#evaluator`` is MONAI's ``SupervisedEvaluator``: the group-aware
  :class:`monai_fair.engines.GroupSupervisedEvaluator` instead (same arguments; it adds ``group`` to the output).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask

from monai_fair.apps.monailabel.datalist import (
    fetch_group_datalist,
    load_attribute_csv,
    parse_group_spec,
    write_fair_datalist,
)

__all__ = ["FairBundleTrainTask", "REPORT_SUBDIR"]

logger = logging.getLogger(__name__)

REPORT_SUBDIR = os.path.join("eval", "monailabel")


class FairBundleTrainTask(BundleTrainTask):
    """Train a monai-fair bundle on the datastore's labeled images, with their groups.

    Args:
        path: the bundle folder.
        conf: the app configuration. Keys read: ``fair_group_spec`` (JSON of ``GroupSpec.to_dict()``) or
            ``fair_attribute`` (+ optional ``fair_categories``, e.g. ``"F,M"``) to encode raw attributes;
            ``fair_group_names`` (comma-separated) when the image info carries integer ``group`` ids instead;
            ``fair_attributes_csv`` (CSV with ``image_id`` column) to join attributes not in the datastore;
            ``fair_min_group_size`` (default 10) for the report.
        task: ``"segmentation"`` or ``"classification"`` (the report's kind).
        kwargs: further arguments of ``BundleTrainTask``.
    """

    def __init__(self, path: str, conf: dict[str, str], task: str = "segmentation", **kwargs: Any) -> None:
        super().__init__(os.path.realpath(path), conf, **kwargs)
        self.task = task
        self.spec = parse_group_spec(
            conf.get("fair_group_spec"), conf.get("fair_attribute"), conf.get("fair_categories")
        )
        names = conf.get("fair_group_names")
        self.group_names_conf = [n.strip() for n in names.split(",")] if names else None
        self.attributes_csv = conf.get("fair_attributes_csv")
        self.min_group_size = int(conf.get("fair_min_group_size", 10))
        self._group_names: list[str] = []

    @property
    def report_dir(self) -> str:
        return os.path.join(self.bundle_path, REPORT_SUBDIR)

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["fairness"] = {"task": self.task, "report_dir": REPORT_SUBDIR}
        return i

    def _load_checkpoint(self, model_pytorch: str, pretrained: bool, train_handlers: list) -> None:
        # MONAI Label 0.8.5 calls os.path.exists(None) when pretrained is False
        if not pretrained:
            return
        # ... and calls .get on every handler: a bundle may list a handler by reference ("@resume_handler"), which
        # MONAI's config parser resolves later; check the dict entries only and keep the references in place
        dicts = [h for h in train_handlers if isinstance(h, dict)]
        super()._load_checkpoint(model_pytorch, pretrained, dicts)
        train_handlers[:0] = [h for h in dicts if h not in train_handlers]

    def _fetch_datalist(self, request: dict[str, Any], datastore: Datastore) -> list[dict[str, Any]]:
        attributes = load_attribute_csv(self.attributes_csv) if self.attributes_csv else None
        items, self._group_names = fetch_group_datalist(
            datastore, self.spec, attributes=attributes, group_names=self.group_names_conf
        )
        logger.info(f"Fair datalist: {len(items)} labeled images in {len(self._group_names)} groups")
        return items

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        train = overrides.get(self.const.key_train_dataset_data(), [])
        val = overrides.get(self.const.key_validate_dataset_data(), [])
        path = write_fair_datalist(
            os.path.join(self.bundle_path, "models", "monailabel_datalist.json"),
            train,
            val or [],
            self._group_names,
            self.spec,
        )
        overrides["datalist"] = str(path)
        overrides["group_names"] = list(self._group_names)
        if "min_group_size" in self.bundle_config:  # the bundle's own metric handlers suppress like the report
            overrides["min_group_size"] = self.min_group_size
        handlers = self.bundle_config.get("validate#handlers")
        if isinstance(handlers, list):
            handlers = json.loads(json.dumps(handlers))
            if not any(
                str(h.get("_target_", "")).endswith("FairnessReportHandler") for h in handlers if isinstance(h, dict)
            ):
                handlers.append(
                    {
                        "_target_": "monai_fair.handlers.FairnessReportHandler",
                        "output_dir": self.report_dir,
                        "task": self.task,
                        "group_names": list(self._group_names),
                        "min_group_size": self.min_group_size,
                        "plots": False,
                    }
                )
            overrides["validate#handlers"] = handlers
        # a standard (non monai-fair) bundle: make its evaluator put the batch's group into the engine output
        if self.bundle_config.get("validate#evaluator#_target_") in (
            "SupervisedEvaluator",
            "monai.engines.SupervisedEvaluator",
        ):
            overrides["validate#evaluator#_target_"] = "monai_fair.engines.GroupSupervisedEvaluator"
        return overrides
