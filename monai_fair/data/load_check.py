# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Load every image through a bundle's own loading chain before training, and say why a file fails and how to fix it.

Headers can look fine while the pixels cannot be read by the reader training uses: a 16-bit RGB DICOM (ITK has no
16-bit RGB pixel type), a single-frame RT Dose grid with 32-bit pixels (GDCM refuses it), a corrupt JPEG 2000
codestream (GDCM prints ``Tile part length size inconsistent with stream length`` to stderr, without the file
name). :func:`find_load_failures` runs the chain (``LoadImaged`` and the adaptation transforms, the same objects
the bundle trains with) on every item in a pool of worker processes; each worker sends its stderr to a temporary
file while an item loads, so a decoder's message is attached to the file that caused it instead of scrolling past.
:func:`describe_load_failure` turns the exception, the decoder's words and the file's header into one line: the
file, the reason, and the fix (which conversion, or which re-export).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["LoadFailure", "find_load_failures", "describe_load_failure", "default_loading_chain", "TRANSFER_SYNTAXES"]

#: compressed DICOM transfer syntaxes by UID (PS3.5 Annex A), for messages
TRANSFER_SYNTAXES: dict[str, str] = {
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}
_RT_DOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
_ITK_TYPE = re.compile(r"^itk\.[\w\[\], ]+$")  # the lines of ITK's list of wrapped types
_SOURCE_PATH = re.compile(r"(/[^\s:]+\.(?:cxx|h|hxx|cpp|c)):?\d*:?\s*(\(\))?:?")
_worker_chain: Callable | None = None


@dataclass
class LoadFailure:
    """One file the chain could not load: ``path``, ``reason`` (exception and decoder output), ``fix``."""

    path: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: the training chain cannot load it: {self.reason.rstrip('. ')}. Fix: {self.fix}"


def default_loading_chain(
    task: str = "classification", spatial_dims: int = 2, in_channels: int | None = None
) -> Callable[[Mapping[str, Any]], Any]:
    """The loading and adaptation part of monai-fair's transform chains (no resize, no augmentation).

    ``LoadImaged`` (channel first) -> :class:`~monai_fair.data.transforms.PruneImageMetad` ->
    :class:`~monai_fair.data.transforms.SqueezeTrailingDimsd` -> :class:`~monai_fair.data.transforms.MatchChannelsd`
    (image to ``in_channels`` when given; segmentation mask to 1). Used by ``check`` when no bundle chain is given.
    """
    from monai.transforms import Compose

    from monai_fair.data.transforms import MatchChannelsd, load_chain

    keys = ["image"] if task == "classification" else ["image", "label"]
    xs: list[Any] = load_chain(keys, spatial_dims, allow_missing=task != "classification")
    if in_channels is not None:
        xs.append(MatchChannelsd("image", in_channels))
    if task != "classification":
        xs.append(MatchChannelsd("label", 1, allow_missing_keys=True))
    return Compose(xs)


@contextmanager
def _stderr_to_file():
    """Send file descriptor 2 (C/C++ libraries' stderr: ITK, GDCM) to a temporary file; yields a reader of it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        captured: list[str] = []
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read(4096).decode("utf-8", "replace"))


def _set_worker_chain(chain: Callable) -> None:
    global _worker_chain
    _worker_chain = chain


def _init_worker(chain: Callable) -> None:
    """A forked worker: the chain, and the default SIGTERM action (a handler inherited from the parent, e.g. the
    trial's, only runs between bytecodes, so a worker blocked in a lock would survive ``Pool.terminate``)."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _set_worker_chain(chain)


def _innermost(e: BaseException) -> BaseException:
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _clean(text: str, limit: int = 240) -> str:
    text = _SOURCE_PATH.sub("", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not _ITK_TYPE.match(ln.strip())]
    lines = [ln for ln in lines if "nvImageCodec" not in ln and "NvImgCodec" not in ln and "Warning" not in ln]
    out = " / ".join(dict.fromkeys(lines))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _try_load(item: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """Run the worker's chain on ``item``: ``None``, or ``(failing path, exception text, decoder stderr)``."""
    assert _worker_chain is not None
    with _stderr_to_file() as captured:
        try:
            _worker_chain(dict(item))
            error = None
        except Exception as e:  # any failure is reported with its file
            inner = _innermost(e)
            lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip() and not _ITK_TYPE.match(ln.strip())]
            error = f"{type(inner).__name__}: {lines[0] if len(lines) > 2 else ' '.join(lines)}"
    if error is None:
        return None
    return _failing_path(item, error), error, captured[0] if captured else ""


def _failing_path(item: Mapping[str, Any], error: str) -> str:
    """The item's file named in ``error``, else its image."""
    paths = [p for v in item.values() for p in (v if isinstance(v, list) else [v]) if isinstance(p, str)]
    for p in paths:
        if p in error:
            return p
    return paths[0] if paths else "?"


def _dicom_fix(ds: Any, reason: str) -> str | None:
    """The fix for a DICOM file the chain cannot load, from its header (``None``: nothing specific)."""
    bits = int(getattr(ds, "BitsAllocated", 0) or 0)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    sop = str(getattr(ds, "SOPClassUID", ""))
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if sop == _RT_DOSE_SOP or str(getattr(ds, "Modality", "")) == "RTDOSE":
        return (
            f"this is an RT Dose grid ({bits}-bit dose values scaled by DoseGridScaling), not an image GDCM reads; "
            "leave it out of the datalist, or export the dose as NIfTI (pydicom: ds.pixel_array * "
            "ds.DoseGridScaling, then nibabel)"
        )
    if samples == 3 and bits > 8:
        return (
            f"{bits}-bit colour DICOM: ITK has no {bits}-bit RGB pixel type; convert it to 8-bit RGB (pydicom: "
            f"(ds.pixel_array >> (ds.BitsStored - 8)).astype('uint8'), saved as 8-bit DICOM or PNG) or to grayscale"
        )
    if bits == 32:
        return "32-bit integer pixels, which GDCM does not read as an image: convert to 16-bit DICOM or to NIfTI"
    if ts in TRANSFER_SYNTAXES:
        return (
            f"its {TRANSFER_SYNTAXES[ts]} pixel data ({ts}) could not be decoded: the codestream is corrupt or uses "
            "a feature GDCM lacks. Re-export the image from the source system, or decompress it (gdcmconv --raw IN "
            "OUT, or dcmdjpeg / dcmdjp2k); if it fails there too, the file is damaged"
        )
    return None


def describe_load_failure(path: str, error: str, decoder_output: str = "", header: Any = None) -> LoadFailure:
    """One :class:`LoadFailure` from an exception text, what the decoder printed, and the file's header (if any).

    Args:
        path: the file that failed.
        error: ``"ExceptionType: message"`` of the innermost exception.
        decoder_output: what the reader libraries printed to stderr while loading it.
        header: the file's DICOM header (``pydicom.Dataset``), when it is a DICOM file.
    """
    said = _clean(decoder_output)
    message = error.split(": ", 1)[1] if ": " in error else error
    own = path in message and ("spatial_dims" in message or "channel" in message)
    reason = _clean(message.replace(path, "").strip(" :")) if own else _clean(error)
    if said:
        reason = f"{reason}; the decoder said: {said}"
    fix = _dicom_fix(header, reason) if header is not None else None
    if fix is None and own:
        fix = "see the reason (monai-fair's own adaptation step names the setting to change)"
    if fix is None:
        fix = (
            "open the file in another viewer; re-export it in a format MONAI reads (NIfTI, uncompressed DICOM, PNG) "
            "or leave it out of the datalist"
        )
    return LoadFailure(path, reason, fix)


def find_load_failures(
    items: Sequence[Mapping[str, Any]],
    chain: Callable[[Mapping[str, Any]], Any],
    num_workers: int | None = None,
    headers: Mapping[str, Any] | None = None,
) -> list[LoadFailure]:
    """Run ``chain`` on every item (a pool of ``num_workers`` processes; 0: in this process); the failures, in order.

    Args:
        items: datalist items with resolved paths (as the bundle's dataset gives them to its transforms).
        chain: the bundle's loading and adaptation chain (e.g. its ``validate#preprocessing``).
        num_workers: worker processes (default ``min(4, CPUs)``; forked, so ``chain`` is not pickled). Inside a
            daemonic process, where ``fork`` is unavailable, or while this process runs other threads (a fork copies
            their locks in whatever state they are: a worker could block forever; e.g. a progress bar's monitor
            thread in the trial), the items load in this process.
        headers: path -> DICOM header, for the fix of a DICOM file (see :func:`describe_load_failure`).
    """
    if not items:
        return []
    n = min(4, os.cpu_count() or 1) if num_workers is None else int(num_workers)
    n = min(n, len(items))
    daemon = multiprocessing.current_process().daemon  # a daemonic process (a pool worker) cannot have children
    threads = threading.active_count() > 1
    if n <= 0 or daemon or threads or "fork" not in multiprocessing.get_all_start_methods():
        _set_worker_chain(chain)
        results = [_try_load(it) for it in items]
    else:
        with multiprocessing.get_context("fork").Pool(n, initializer=_init_worker, initargs=(chain,)) as pool:
            results = pool.map(_try_load, items, chunksize=max(1, len(items) // (4 * n)))
    headers = headers or {}
    return [describe_load_failure(p, err, said, headers.get(p)) for p, err, said in filter(None, results)]
