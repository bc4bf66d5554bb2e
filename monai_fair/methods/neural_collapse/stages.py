# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Data preparation of the ``neural_collapse_classification`` bundle, split so that resolving a config id has no
side effect: :func:`labelled_datalist_path` only *names* the datalist the run trains on (the clean one, or its
label-biased copy next to it), and :func:`prepare_labelled_datalist`, called in the bundle's ``initialize``, writes
the biased copy (:func:`monai_fair.data.apply_label_bias_to_datalist`: a fixed, seeded, recorded flip set in the
training split only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monai_fair.data import apply_label_bias_to_datalist

__all__ = ["labelled_datalist_path", "prepare_labelled_datalist"]


def labelled_datalist_path(clean_datalist: str | os.PathLike, label_bias_fraction: float) -> str:
    """The datalist a run uses: ``clean_datalist`` without label bias, else ``<stem>_labelbias.json`` beside it.

    Pure: nothing is read or written.
    """
    src = Path(clean_datalist)
    return str(src if label_bias_fraction <= 0 else src.with_name(src.stem + "_labelbias.json"))


def prepare_labelled_datalist(
    clean_datalist: str | os.PathLike,
    label_bias_fraction: float,
    group: int | Sequence[int] | str,
    from_label: int = 1,
    to_label: int = 0,
    seed: int = 0,
) -> str:
    """Write the label-biased copy of ``clean_datalist`` when ``label_bias_fraction > 0`` (reused when it already
    exists with the same parameters); return :func:`labelled_datalist_path`.

    Args:
        clean_datalist: the datalist without label bias.
        label_bias_fraction: fraction of the ``from_label`` items of ``group`` (training split) recorded as
            ``to_label``; ``<= 0``: nothing is written.
        group: group id(s) or name.
        from_label, to_label, seed: see :func:`monai_fair.data.inject_label_bias`.
    """
    out = labelled_datalist_path(clean_datalist, label_bias_fraction)
    if label_bias_fraction > 0:
        apply_label_bias_to_datalist(
            clean_datalist,
            out,
            fraction=label_bias_fraction,
            group=group,
            from_label=from_label,
            to_label=to_label,
            seed=seed,
        )
    return out
