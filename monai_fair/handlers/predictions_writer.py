# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Write an evaluator's per-case predictions to a CSV that ``python -m monai_fair report`` reads as it is.

The file convention (header always present; columns in this order):

* classification: ``case_id, image, prob_<class 0>, ..., prob_<class C-1>, pred, label, group[, patient_id]``
  where ``prob_<name>`` are the network's class probabilities (after the evaluator's postprocessing, e.g.
  ``Activationsd(softmax=True)``), ``pred = argmax``, ``<name>`` are the datalist's ``label_names`` (or
  ``0..C-1``);
* segmentation: ``case_id, image, dice, iou, pred, label, group[, patient_id]`` with the per-case foreground Dice
  and IoU of the argmax prediction against the mask (mean over the foreground classes; MONAI's ``compute_dice`` /
  ``compute_iou``), ``pred`` the predicted mask file (when ``pred_mask_dir`` names where a ``SaveImaged`` of the
  inference config writes it) and ``label`` the mask file.

``label`` and ``group`` are written when the batch has them (inference on unlabelled data leaves them out);
``group`` is the group *name* from ``group_names`` (the id when no names are given). ``patient_id`` (or
``cluster``) is added when the datalist's metadata has one, so that the report can resample patients instead of
images. ``image``, ``label`` (masks) and ``pred`` (masks) are absolute paths. Rows keep the order the evaluator saw
the cases; under ``torch.distributed`` the rows of every rank are gathered and rank 0 writes the file (atomically).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.data import MetaTensor
from monai.metrics import compute_dice, compute_iou
from monai.networks.utils import one_hot
from monai.utils import IgniteInfo, look_up_option, min_version, optional_import, string_list_all_gather

from monai_fair.utils.distributed import get_world_size, is_rank_zero
from monai_fair.utils.io import atomic_write_text

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["PredictionsWriter", "prediction_columns"]

_TASKS = ("classification", "segmentation")


def prediction_columns(
    task: str, class_names: Sequence[str], has_label: bool = True, has_group: bool = True, cluster: str | None = None
) -> list[str]:
    """The header of a predictions CSV (see the module docstring)."""
    task = look_up_option(task, _TASKS)
    cols = ["case_id", "image"]
    cols += [f"prob_{c}" for c in class_names] + ["pred"] if task == "classification" else ["dice", "iou", "pred"]
    cols += (["label"] if has_label else []) + (["group"] if has_group else [])
    return cols + ([cluster] if cluster else [])


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.reshape(-1)[0].item() if v.numel() else ""
    return v


def _csv_line(values: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class PredictionsWriter:
    """Collect per-case predictions of an evaluator and write them as a CSV when it completes.

    Args:
        output_dir: folder of the CSV (created).
        filename: CSV file name.
        task: ``"classification"`` or ``"segmentation"``.
        class_names: classification class names (``prob_<name>`` columns); default the datalist's
            ``label_names``, else ``0..C-1``.
        group_names: names written in the ``group`` column (index = group id); default the datalist's.
        datalist: the datalist JSON; gives ``label_names``, ``group_names`` and a ``patient_id``/``cluster``
            column from its metadata (never other attributes).
        pred_mask_dir: segmentation: the ``output_dir`` of the ``SaveImaged`` that writes predicted masks (with
            ``separate_folder=False``); the ``pred`` column then names each file. ``None``: ``pred`` left empty.
        pred_mask_postfix, pred_mask_ext: that ``SaveImaged``'s ``output_postfix`` and ``output_ext``.
        pred_key, label_key, group_key, case_key, image_key: keys in the engine output / batch.

    Raises:
        ValueError: a prediction whose class count differs from ``class_names``, naming the case.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        filename: str = "predictions.csv",
        task: str = "classification",
        class_names: Sequence[str] | None = None,
        group_names: Sequence[str] | None = None,
        datalist: str | os.PathLike | None = None,
        pred_mask_dir: str | os.PathLike | None = None,
        pred_mask_postfix: str = "seg",
        pred_mask_ext: str = ".nii.gz",
        pred_key: str = "pred",
        label_key: str = "label",
        group_key: str = "group",
        case_key: str = "case_id",
        image_key: str = "image",
    ) -> None:
        self.task = look_up_option(task, _TASKS)
        self.path = Path(output_dir) / filename
        self.pred_key, self.label_key, self.group_key = pred_key, label_key, group_key
        self.case_key, self.image_key = case_key, image_key
        self.class_names = list(class_names) if class_names is not None else None
        self.group_names = list(group_names) if group_names is not None else None
        self.pred_mask_dir = None if pred_mask_dir is None else os.path.abspath(pred_mask_dir)
        self.pred_mask_postfix, self.pred_mask_ext = pred_mask_postfix, pred_mask_ext
        self.clusters: dict[str, str] = {}
        self.cluster_col: str | None = None
        if datalist is not None:
            self._read_datalist(Path(datalist))
        self._rows: list[dict[str, Any]] = []
        self.logger = logging.getLogger(__name__)

    def _read_datalist(self, path: Path) -> None:
        import json

        from monai_fair.data.datalist import load_case_metadata

        data = json.loads(path.read_text())
        if self.class_names is None and isinstance(data.get("label_names"), list):
            self.class_names = [str(n) for n in data["label_names"]]
        if self.group_names is None and isinstance(data.get("group_names"), list):
            self.group_names = [str(n) for n in data["group_names"]]
        meta = load_case_metadata(path)
        for col in ("patient_id", "cluster"):
            values = {cid: str(m[col]) for cid, m in meta.items() if m.get(col) not in (None, "")}
            if values:
                self.cluster_col, self.clusters = col, values
                break

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self._rows = []

    def _iteration(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if isinstance(batch, Mapping):  # not decollated (no postprocessing): split the batch
            from monai.data import decollate_batch

            batch, output = decollate_batch(batch), decollate_batch(output)
        for b, o in zip(batch, output):
            self._rows.append(self._row(b, o))

    def _row(self, b: Mapping[str, Any], o: Mapping[str, Any]) -> dict[str, Any]:
        image = b.get(self.image_key)
        src = image.meta.get("filename_or_obj", "") if isinstance(image, MetaTensor) else ""
        case = str(_scalar(b.get(self.case_key, ""))) or Path(str(src)).name
        row: dict[str, Any] = {"case_id": case, "image": os.path.abspath(src) if src else ""}
        pred = o[self.pred_key]
        if self.task == "classification":
            probs = pred.detach().float().reshape(-1).cpu()
            names = self.class_names or [str(k) for k in range(probs.numel())]
            if len(names) != probs.numel():
                raise ValueError(
                    f"case {case}: {probs.numel()} class scores but {len(names)} class names {names}; set class_names."
                )
            self.class_names = names
            row.update({f"prob_{n}": float(p) for n, p in zip(names, probs.tolist())})
            row["pred"] = int(probs.argmax())
            if self.label_key in b:
                row["label"] = _scalar(b[self.label_key])
        else:
            lab = b.get(self.label_key)
            if isinstance(lab, torch.Tensor):
                p = pred.detach()
                c = max(int(p.shape[0]), 2)
                p1 = one_hot(p.argmax(0, keepdim=True)[None], c) if p.shape[0] > 1 else (p[None] > 0.5).float()
                y1 = one_hot(lab.detach()[None].to(p.device).long(), c) if p.shape[0] > 1 else lab[None].float()
                dice = compute_dice(p1, y1, include_background=p.shape[0] == 1, ignore_empty=False)
                iou = compute_iou(p1, y1, include_background=p.shape[0] == 1, ignore_empty=False)
                row["dice"], row["iou"] = float(dice.nanmean()), float(iou.nanmean())
                lsrc = lab.meta.get("filename_or_obj", "") if isinstance(lab, MetaTensor) else ""
                row["label"] = os.path.abspath(lsrc) if lsrc else ""
            else:
                row["dice"] = row["iou"] = ""
            if self.pred_mask_dir is not None and src:
                from monai.data.utils import create_file_basename

                base = create_file_basename(self.pred_mask_postfix, src, self.pred_mask_dir, "", False, makedirs=False)
                row["pred"] = base + self.pred_mask_ext
        if self.group_key in b:
            g = int(_scalar(b[self.group_key]))
            row["group"] = self.group_names[g] if self.group_names and 0 <= g < len(self.group_names) else g
        if self.cluster_col:
            row[self.cluster_col] = self.clusters.get(case, "")
        return row

    def _completed(self, engine: Engine) -> None:
        rows = self._rows
        has_label = any("label" in r for r in rows)
        has_group = any("group" in r for r in rows)
        cols = prediction_columns(self.task, self.class_names or [], has_label, has_group, self.cluster_col)
        lines = [_csv_line([_fmt(r.get(c, "")) for c in cols]) for r in rows]
        if get_world_size() > 1:
            lines = string_list_all_gather(lines, delimiter="\x1e")
        if not is_rank_zero():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, _csv_line(cols) + "\n" + "".join(line + "\n" for line in lines))
        self.logger.info(f"wrote {len(lines)} predictions to {self.path}")
