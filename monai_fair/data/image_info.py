# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Header-only facts about an image file: readable or not (truncated included), spatial shape, channels.

:func:`read_image_info` reads each file's header once, never its pixels, and detects truncation from sizes the
header promises:

* NIfTI pairs / Analyze (``.hdr`` + ``.img``): both files must exist, the ``.img`` as large as the header says.
* NIfTI (``.nii``): the file must hold ``vox_offset + prod(shape) * itemsize`` bytes; ``.nii.gz``: the gzip
  trailer's ISIZE field (uncompressed size mod 2**32, RFC 1952) must equal that number (a file cut anywhere
  ends in unrelated bytes, so the check fails with probability ~1 - 2**-32).
* DICOM file: the header is parsed with large values deferred; an uncompressed ``PixelData`` element must end
  within the file. A DICOM series folder: every file's header, all slices of one size.
* PNG: the file must end with the ``IEND`` chunk; JPEG: with the EOI marker ``FF D9`` (within the last 64 bytes).
* Other formats ITK reads (``.mha``, ``.nrrd``, ``.tif``, ...): ITK's ``ReadImageInformation``.

The spatial shape is reported in the order MONAI's readers return it (columns before rows for DICOM, PNG and
JPEG; the stored order for NIfTI), with trailing singleton dimensions removed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ImageInfo", "read_image_info", "is_dicom_series", "UNCOMPRESSED_TRANSFER_SYNTAXES"]

UNCOMPRESSED_TRANSFER_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_NIFTI = (".nii", ".nii.gz", ".hdr", ".img")
_PIL = (".png", ".jpg", ".jpeg")
_DICOM = (".dcm", ".dicom", ".ima", "")
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass
class ImageInfo:
    """What :func:`read_image_info` found.

    Attributes:
        path: the file or folder.
        error: why it cannot be read (``None`` when readable).
        spatial_shape: spatial size in MONAI reader order, trailing singleton dimensions removed.
        channels: number of channels (samples per pixel / colour components).
        kind: ``"nifti"``, ``"dicom"``, ``"dicom-series"``, ``"png"``, ``"jpeg"`` or ``"itk"``.
        extra: format facts of use to callers (e.g. ``{"dicom": pydicom header}`` for DICOM files).
    """

    path: str
    error: str | None = None
    spatial_shape: tuple[int, ...] = ()
    channels: int = 0
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def spatial_dims(self) -> int:
        return len(self.spatial_shape)


def _strip(shape: tuple[int, ...]) -> tuple[int, ...]:
    s = list(shape)
    while len(s) > 2 and s[-1] == 1:
        s.pop()
    return tuple(int(x) for x in s)


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()


def is_dicom_series(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder (read as one DICOM series)."""
    return Path(path).is_dir()


def _nifti(p: Path, info: ImageInfo) -> None:
    import nibabel as nib

    info.kind = "nifti"
    if _suffix(p) in (".hdr", ".img"):
        _analyze_pair(p)
    try:
        img = nib.load(str(p))
    except Exception as e:
        if _suffix(p) == ".nii.gz":
            import gzip
            import zlib

            try:
                with gzip.open(p) as f:
                    while f.read(1 << 20):
                        pass
            except (EOFError, OSError, zlib.error) as g:
                raise ValueError(f"truncated or corrupt .nii.gz ({type(g).__name__}: {g})") from e
        raise ValueError(f"not a readable NIfTI file ({type(e).__name__}: {e})") from e
    hdr = img.header
    shape = tuple(int(s) for s in img.shape)
    if len(shape) >= 5:  # (x, y, z, t=1, c): MONAI reads the 5th dim as channels
        info.channels, shape = shape[4], shape[:3]
    elif len(shape) == 4:
        info.channels, shape = shape[3], shape[:3]
    else:
        info.channels = 1
    info.spatial_shape = _strip(shape)
    if _suffix(p) in (".hdr", ".img"):
        data_file = p.with_suffix(".img") if p.with_suffix(".img").exists() else p.with_suffix(".IMG")
        expected = int(hdr.get_data_dtype().itemsize) * int(_prod(img.shape))
        if data_file.stat().st_size < expected:
            raise ValueError(f"truncated: {data_file.name} has {data_file.stat().st_size} bytes, needs {expected}")
        return
    offset = getattr(img.dataobj, "offset", None)
    offset = int(offset) if offset is not None else max(int(hdr.get("vox_offset", 0)), 352)
    expected = offset + int(hdr.get_data_dtype().itemsize) * int(_prod(img.shape))
    if _suffix(p) == ".nii.gz":
        with p.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 18:
                raise ValueError("truncated gzip file")
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
        if isize != expected % 2**32:
            raise ValueError(f"truncated or corrupt .nii.gz: the header promises {expected} bytes uncompressed")
    elif p.stat().st_size < expected:
        raise ValueError(f"truncated: {p.stat().st_size} bytes, the header promises {expected}")


def _analyze_pair(p: Path) -> None:
    """An Analyze/NIfTI pair needs both files: a ``.hdr`` without its ``.img`` (or the reverse) is an error."""
    other = p.with_suffix(".img" if _suffix(p) == ".hdr" else ".hdr")
    if not other.exists():
        upper = p.with_suffix(other.suffix.upper())
        if not upper.exists():
            raise ValueError(
                f"{p.name} is one half of an Analyze/NIfTI pair and {other.name} is missing: copy both files "
                "(or convert the pair to a single .nii.gz)"
            )


def _prod(shape: Any) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _dicom_header(p: Path) -> Any:
    import pydicom

    ds = pydicom.dcmread(str(p), defer_size="1 KB")
    if "Rows" not in ds or "Columns" not in ds:
        raise ValueError("DICOM file without Rows/Columns (not an image)")
    raw = ds._dict.get(0x7FE00010) if hasattr(ds, "_dict") else None
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    if raw is None:
        raise ValueError("DICOM file without PixelData")
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if ts in UNCOMPRESSED_TRANSFER_SYNTAXES and tell is not None and length not in (None, 0xFFFFFFFF):
        if tell + length > p.stat().st_size:
            raise ValueError(f"truncated: PixelData needs {tell + length} bytes, the file has {p.stat().st_size}")
    return ds


def _dicom_shape(ds: Any) -> tuple[tuple[int, ...], int]:
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    shape = (int(ds.Columns), int(ds.Rows)) + ((frames,) if frames > 1 else ())
    return shape, int(getattr(ds, "SamplesPerPixel", 1) or 1)


def _dicom(p: Path, info: ImageInfo) -> None:
    info.kind = "dicom"
    ds = _dicom_header(p)
    shape, info.channels = _dicom_shape(ds)
    info.spatial_shape = _strip(shape)
    info.extra["dicom"] = ds


def _series(p: Path, info: ImageInfo) -> None:
    info.kind = "dicom-series"
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise ValueError("empty DICOM series folder")
    sizes, problems, first = set(), [], None
    for f in files:
        try:
            ds = _dicom_header(f)
        except Exception as e:  # every slice is checked: report the failing ones by name
            problems.append(f"{f.name}: {_reason(e)}")
            continue
        first = first or ds
        sizes.add(_dicom_shape(ds))
    if problems:
        raise ValueError("; ".join(problems))
    if len(sizes) > 1:
        raise ValueError(f"slices of different sizes {sorted(sizes)}")
    (shape, channels) = sizes.pop()
    info.channels = channels
    info.spatial_shape = _strip(shape + (len(files),))
    info.extra["dicom"] = first


def _pil(p: Path, info: ImageInfo) -> None:
    from PIL import Image

    with Image.open(p) as im:
        w, h = im.size
        info.kind = (im.format or "").lower() or _suffix(p).lstrip(".")
        bands = len(im.getbands())
    info.channels = bands
    info.spatial_shape = (int(w), int(h))
    size = p.stat().st_size
    with p.open("rb") as f:
        f.seek(max(0, size - 64))
        tail = f.read()
    if info.kind == "png" and not tail.endswith(_PNG_END):
        raise ValueError("truncated PNG (no IEND chunk at the end)")
    if info.kind in ("jpeg", "jpg") and b"\xff\xd9" not in tail:
        raise ValueError("truncated JPEG (no end-of-image marker)")


def _itk(p: Path, info: ImageInfo) -> None:
    import itk

    info.kind = "itk"
    io = itk.ImageIOFactory.CreateImageIO(str(p), itk.CommonEnums.IOFileMode_ReadMode)
    if io is None:
        raise ValueError("no reader for this file format")
    io.SetFileName(str(p))
    io.ReadImageInformation()
    shape = tuple(int(io.GetDimensions(i)) for i in range(io.GetNumberOfDimensions()))
    info.channels = int(io.GetNumberOfComponents())
    info.spatial_shape = _strip(shape)


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, ValueError) else f"{type(e).__name__}: {text}"


def read_image_info(path: str | os.PathLike) -> ImageInfo:
    """Read the header of an image file (or DICOM series folder) and check it is complete (see the module doc).

    Never raises for a bad file: the reason is in ``ImageInfo.error``.
    """
    p = Path(path)
    info = ImageInfo(str(p))
    if not p.exists():
        info.error = "file not found"
        return info
    try:
        if p.is_dir():
            _series(p, info)
        elif _suffix(p) in _NIFTI:
            _nifti(p, info)
        elif _suffix(p) in _PIL:
            _pil(p, info)
        elif _suffix(p) in _DICOM or _is_dicom_magic(p):
            _dicom(p, info)
        else:
            _itk(p, info)
    except Exception as e:  # any reader failure is reported, with the file, by the caller
        info.error = _reason(e)
    return info


def _is_dicom_magic(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False
