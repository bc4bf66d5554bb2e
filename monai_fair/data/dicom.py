# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""DICOM demographics (header only) and a small DICOM writer for synthetic data and tests.

Reading uses ``pydicom.dcmread(path, stop_before_pixels=True)``: pixel data is never decoded. The attributes
(DICOM PS3.6 tags):

* ``PatientSex`` (0010,0040): ``M`` or ``F``; ``O`` (other), the non-standard ``U`` and empty -> ``None``
  (missing, with a note): ``O`` is too rare to form a group that can be reported.
* ``PatientAge`` (0010,1010), an Age String ``nnnD|W|M|Y``, converted to years as a float:
  ``D / 365.25``, ``W * 7 / 365.25``, ``M / 12``, ``Y``.
* When ``PatientAge`` is absent or empty: ``(StudyDate - PatientBirthDate)`` in years (calendar years, less one
  when the birthday has not been reached in the study year, plus the fraction of the year elapsed since the
  last birthday); ``SeriesDate``/``AcquisitionDate``/``ContentDate`` stand in for a missing ``StudyDate``.
  A placeholder birth date (``11111111``, ``19000101``, ...) or an age outside 0..120 years gives ``None`` with the
  reason in ``notes`` (``11111111`` once gave age 894, filed as ">=60").
* ``EthnicGroup`` (0010,2160).
* Acquisition (site/scanner bias): ``Manufacturer`` (0008,0070), ``ManufacturerModelName`` (0008,1090),
  ``InstitutionName`` (0008,0080).

Only version-neutral pydicom APIs are used (works with pydicom 2.4 and 3.x).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from monai.config import KeysCollection
from monai.transforms import MapTransform
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from monai_fair.data.groups import GroupSpec

__all__ = [
    "PLACEHOLDER_BIRTH_DATES",
    "SEX_CODES_UNKNOWN",
    "plausible_age",
    "parse_dicom_age",
    "parse_dicom_date",
    "age_from_dates",
    "read_dicom_demographics",
    "DicomDemographicsd",
    "write_dicom_image",
    "write_dicom_series",
]

_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])
_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_FACTORS = {"D": 1.0 / 365.25, "W": 7.0 / 365.25, "M": 1.0 / 12.0, "Y": 1.0}
# SOP class: Secondary Capture Image Storage (any pixel data), MR Image Storage for series.
SECONDARY_CAPTURE_SOP = "1.2.840.10008.5.1.4.1.1.7"
MR_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.4"


def parse_dicom_age(value: Any) -> float | None:
    """Convert a DICOM Age String (``045Y``, ``006M``, ``012W``, ``003D``) to years; empty -> ``None``.

    Raises:
        ValueError: for a non-empty value that is not an Age String.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    m = _AGE_RE.match(text)
    if m is None:
        raise ValueError(f"PatientAge {text!r} is not a DICOM Age String (nnnD, nnnW, nnnM or nnnY).")
    return float(m.group(1)) * _AGE_FACTORS[m.group(2).upper()]


def parse_dicom_date(value: Any) -> _dt.date | None:
    """Parse a DICOM DA value (``YYYYMMDD``; ``YYYY.MM.DD`` of old files accepted); empty -> ``None``."""
    if value is None:
        return None
    text = str(value).strip().replace(".", "")
    if not text:
        return None
    try:
        return _dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError as e:
        raise ValueError(f"{value!r} is not a DICOM date (YYYYMMDD).") from e


def age_from_dates(birth: _dt.date, study: _dt.date) -> float:
    """Age in years at ``study`` for someone born on ``birth`` (whole years + elapsed fraction of the year)."""
    if study < birth:
        raise ValueError(f"study date {study} is before birth date {birth}.")
    years = study.year - birth.year
    try:
        last = birth.replace(year=birth.year + years)
    except ValueError:  # 29 February in a non-leap year
        last = _dt.date(birth.year + years, 3, 1)
    if last > study:
        years -= 1
        try:
            last = birth.replace(year=birth.year + years)
        except ValueError:
            last = _dt.date(birth.year + years, 3, 1)
    try:
        nxt = last.replace(year=last.year + 1)
    except ValueError:
        nxt = _dt.date(last.year + 1, 3, 1)
    return years + (study - last).days / float((nxt - last).days)


def _str_or_none(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword, None)
    if v is None:
        return None
    text = str(v).strip()
    return text or None


#: birth dates that exports write when the real one is unknown (never a real patient's)
PLACEHOLDER_BIRTH_DATES = ("11111111", "00000000", "19000101", "18991230", "19010101", "99999999")
#: DICOM PatientSex codes read as a missing value: ``O`` (other, PS3.3 C.7.1.1) and the non-standard ``U``
SEX_CODES_UNKNOWN = ("O", "U")
#: ages (years) outside ``[0, MAX_PLAUSIBLE_AGE]`` are read as missing, with the reason
MAX_PLAUSIBLE_AGE = 120.0


def plausible_age(age: float | None, source: str = "age") -> tuple[float | None, str | None]:
    """``(age, None)`` when ``age`` is a plausible age in years, else ``(None, reason)`` (never a silent bin)."""
    if age is None:
        return None, None
    if not 0.0 <= age <= MAX_PLAUSIBLE_AGE:
        return None, f"implausible age {age:.0f} from {source} (outside 0..{MAX_PLAUSIBLE_AGE:.0f})"
    return age, None


def _age_from_header(ds: Dataset) -> tuple[float | None, str | None, str | None]:
    """``(age, source, note)``: PatientAge, else study date - birth date; ``note`` says why a value was dropped."""
    age = parse_dicom_age(ds.get("PatientAge", None))
    if age is not None:
        age, note = plausible_age(age, "PatientAge")
        return age, ("PatientAge" if age is not None else None), note
    raw_birth = _str_or_none(ds, "PatientBirthDate")
    if raw_birth is not None and raw_birth.replace(".", "") in PLACEHOLDER_BIRTH_DATES:
        return None, None, f"placeholder birth date {raw_birth} and no PatientAge"
    birth = parse_dicom_date(raw_birth)
    study = None
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        study = parse_dicom_date(ds.get(kw, None))
        if study is not None:
            break
    if birth is None or study is None:
        missing = "PatientBirthDate" if birth is None else "StudyDate"
        return None, None, f"no PatientAge and no {missing}"
    if study < birth:
        return None, None, f"study date {study} before birth date {birth}"
    age, note = plausible_age(age_from_dates(birth, study), "StudyDate - PatientBirthDate")
    return age, ("dates" if age is not None else None), note


def read_dicom_demographics(path: str | os.PathLike | Dataset) -> dict[str, Any]:
    """Read the demographics of one DICOM file from its header only.

    Args:
        path: a DICOM file (a DICOM series folder: pass any of its files), or its header already read
            (a ``pydicom.Dataset``, e.g. ``ImageInfo.extra["dicom"]``): each header is read once per row.

    Returns:
        ``{"sex": "M"|"F"|None, "age": float years | None, "age_source": "PatientAge"|"dates"|None,
        "ethnic_group": str | None, "patient_id": str | None, "manufacturer": str | None, "model": str | None,
        "institution": str | None, "sop_instance_uid": str | None, "notes": {attribute: why it is missing}}``
        (``model`` is ManufacturerModelName (0008,1090), ``institution`` InstitutionName (0008,0080),
        ``manufacturer`` Manufacturer (0008,0070): site/scanner attributes). Policies, each with its note:
        ``PatientSex`` ``O``/``U`` -> ``None`` (:data:`SEX_CODES_UNKNOWN`); a placeholder birth date
        (:data:`PLACEHOLDER_BIRTH_DATES`) or an age outside ``0..120`` -> ``None``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable DICOM file, or holds a malformed age or date (the message names it).
    """
    if isinstance(path, Dataset):
        ds = path
        p = Path(str(getattr(ds, "filename", None) or "<DICOM header>"))
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"DICOM file not found: {p}")
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        except Exception as e:  # pydicom raises InvalidDicomError, EOFError, struct errors, ...
            raise ValueError(f"cannot read DICOM header of {p}: {type(e).__name__}: {e}") from e
    if len(ds) == 0 or not any(k in ds for k in ("PatientID", "PatientSex", "SOPClassUID", "Modality", "PatientAge")):
        raise ValueError(f"{p} holds no DICOM patient/image attributes (not a DICOM image file?).")
    notes: dict[str, str] = {}
    sex = _str_or_none(ds, "PatientSex")
    sex = sex.upper() if sex else None
    if sex in SEX_CODES_UNKNOWN:
        notes["sex"] = f"PatientSex {sex!r} ({'other' if sex == 'O' else 'unknown'}) is read as unknown"
        sex = None
    try:
        age, source, age_note = _age_from_header(ds)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from e
    if age_note:
        notes["age"] = age_note
    return {
        "sex": sex,
        "age": age,
        "age_source": source,
        "ethnic_group": _str_or_none(ds, "EthnicGroup"),
        "patient_id": _str_or_none(ds, "PatientID"),
        "manufacturer": _str_or_none(ds, "Manufacturer"),
        "model": _str_or_none(ds, "ManufacturerModelName"),
        "institution": _str_or_none(ds, "InstitutionName"),
        "sop_instance_uid": _str_or_none(ds, "SOPInstanceUID"),
        "notes": notes,
    }


class DicomDemographicsd(MapTransform):
    """Dictionary transform that adds the DICOM header demographics of ``data[key]`` to the data dict.

    Use it *before* ``LoadImaged`` (``data[key]`` must still be a path; for a series folder the first file
    in sorted order is read). With a ``group_spec`` it adds only the integer group id under ``group_key``: the raw
    attributes are used to compute it and then left out, so that they never reach a batch (a ``None`` age would
    break collation, and batches reach logs); ``keep_attributes=True`` keeps them. Without a ``group_spec`` it adds
    ``sex``, ``age`` and ``ethnic_group`` (names configurable via ``attribute_keys``) for code that audits them.
    Prefer ``python -m monai_fair datalist --dicom-dir``, which reads the headers once into the datalist's metadata.

    Args:
        keys: key(s) of the DICOM path(s); the first key present is read.
        attribute_keys: output key per attribute, default ``{"sex": "sex", "age": "age",
            "ethnic_group": "ethnic_group"}``.
        group_spec: a :class:`~monai_fair.data.GroupSpec` (or its dict) over those output keys.
        group_key: where to put the group id.
        overwrite: replace attributes already in the dict (default ``False``: keep datalist values).
        keep_attributes: keep the raw attributes in the output (default: only when there is no ``group_spec``).
        allow_missing_keys: as MONAI's ``MapTransform``.

    Raises:
        ValueError: under the spec's "drop" policy a missing attribute cannot be dropped inside a transform,
            so it is reported as an error naming the file.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        attribute_keys: Mapping[str, str] | None = None,
        group_spec: GroupSpec | Mapping[str, Any] | None = None,
        group_key: str = "group",
        overwrite: bool = False,
        keep_attributes: bool | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.attribute_keys = dict(attribute_keys or {"sex": "sex", "age": "age", "ethnic_group": "ethnic_group"})
        if isinstance(group_spec, Mapping):
            group_spec = GroupSpec.from_dict(group_spec)
        self.group_spec = group_spec
        self.group_key = group_key
        self.overwrite = overwrite
        self.keep_attributes = group_spec is None if keep_attributes is None else bool(keep_attributes)

    @staticmethod
    def _first_file(path: Any) -> Path:
        if isinstance(path, (list, tuple)):
            if not path:
                raise ValueError("empty list of DICOM paths.")
            path = path[0]
        p = Path(str(path))
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise ValueError(f"DICOM series folder {p} holds no files.")
            return files[0]
        return p

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            demo = read_dicom_demographics(self._first_file(d[key]))
            attrs = {}
            for attr, out_key in self.attribute_keys.items():
                if attr not in demo:
                    raise KeyError(f"unknown DICOM demographic attribute {attr!r}; choose from {sorted(demo)}.")
                attrs[out_key] = demo[attr] if self.overwrite or out_key not in d else d[out_key]
            if self.keep_attributes:
                d.update(attrs)
            if self.group_spec is not None:
                try:
                    gid = int(self.group_spec.encode([{**d, **attrs}])[0])
                except ValueError as e:
                    raise ValueError(f"{d[key]}: {e}") from e
                if gid < 0:
                    raise ValueError(
                        f"{d[key]}: missing sensitive attribute for group spec {self.group_spec.attribute_names} "
                        "(policy 'drop' cannot drop inside a transform; filter the datalist first)."
                    )
                d[self.group_key] = gid
            break
        return d


# ---------------------------------------------------------------------------------------------- writing
def _write(ds: Dataset, path: Path) -> None:
    if _PYDICOM_MAJOR < 3:
        ds.is_little_endian = True
        ds.is_implicit_VR = False
        pydicom.dcmwrite(str(path), ds, write_like_original=False)
    else:
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def _base_dataset(
    sop_class: str,
    sop_instance: str,
    demographics: Mapping[str, Any],
    modality: str,
    study_uid: str,
    series_uid: str,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["monai-fair"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[series_uid, "frame"])
    ds.Modality = modality
    ds.PatientName = str(demographics.get("PatientName", demographics.get("PatientID", "ANON")))
    ds.PatientID = str(demographics.get("PatientID", "ANON"))
    for kw in (
        "PatientSex",
        "PatientAge",
        "PatientBirthDate",
        "EthnicGroup",
        "StudyDate",
        "StudyTime",
        "Manufacturer",
        "ManufacturerModelName",
        "InstitutionName",
    ):
        v = demographics.get(kw)
        if v is not None:
            setattr(ds, kw, str(v))
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.ConversionType = "SYN"
    return ds


def _set_pixels(ds: Dataset, image: np.ndarray, rgb: bool) -> None:
    arr = np.asarray(image)
    if rgb:
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"RGB DICOM needs an (H, W, 3) array, got {arr.shape}.")
        arr = arr.astype(np.uint8)
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    else:
        if arr.ndim != 2:
            raise ValueError(f"grayscale DICOM needs an (H, W) array, got {arr.shape}.")
        if arr.dtype == np.uint8:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        else:
            arr = arr.astype(np.uint16)
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.PixelData = np.ascontiguousarray(arr).tobytes()


def write_dicom_image(
    path: str | os.PathLike,
    image: np.ndarray,
    demographics: Mapping[str, Any] | None = None,
    *,
    modality: str = "OT",
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    uid_seed: str | None = None,
) -> Path:
    """Write a 2D image as a single-frame Secondary Capture DICOM file (Explicit VR Little Endian).

    Args:
        path: output file.
        image: ``(H, W)`` uint8/uint16 (MONOCHROME2) or ``(H, W, 3)`` uint8 (RGB); row ``r`` column ``c``.
        demographics: DICOM keywords to set: ``PatientID``, ``PatientSex``, ``PatientAge`` (``"045Y"``),
            ``PatientBirthDate``/``StudyDate`` (``YYYYMMDD``), ``EthnicGroup``, ``PatientName``, ``Manufacturer``,
            ``ManufacturerModelName``, ``InstitutionName``.
        modality: DICOM Modality (``"XC"`` photography, ``"DX"``, ``"US"``, ``"OT"``).
        pixel_spacing: row and column spacing in mm.
        uid_seed: makes the generated UIDs deterministic (random otherwise).
    """
    path = Path(path)
    demographics = dict(demographics or {})
    seed = [uid_seed] if uid_seed is not None else None
    sop = generate_uid(entropy_srcs=None if seed is None else seed + ["sop"])
    study = generate_uid(entropy_srcs=None if seed is None else seed + ["study"])
    series = generate_uid(entropy_srcs=None if seed is None else seed + ["series"])
    ds = _base_dataset(SECONDARY_CAPTURE_SOP, sop, demographics, modality, study, series)
    ds.InstanceNumber = 1
    ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    _set_pixels(ds, image, rgb=np.asarray(image).ndim == 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(ds, path)
    return path


def write_dicom_series(
    folder: str | os.PathLike,
    volume: np.ndarray,
    demographics: Mapping[str, Any] | None = None,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 2.0),
    uid_seed: str | None = None,
) -> list[Path]:
    """Write a ``(Z, H, W)`` uint16 volume as a DICOM series (one MR Image Storage file per slice).

    Slices share Study/Series/FrameOfReference UIDs and are placed at ``ImagePositionPatient = (0, 0, z *
    spacing[2])``, ``InstanceNumber = z + 1``, so ITK/pydicom readers stack them in order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"write_dicom_series needs a (Z, H, W) volume, got {vol.shape}.")
    demographics = dict(demographics or {})
    seed = [uid_seed] if uid_seed is not None else None
    study = generate_uid(entropy_srcs=None if seed is None else seed + ["study"])
    series = generate_uid(entropy_srcs=None if seed is None else seed + ["series"])
    paths = []
    for z in range(vol.shape[0]):
        sop = generate_uid(entropy_srcs=None if seed is None else seed + ["sop", str(z)])
        ds = _base_dataset(MR_IMAGE_SOP, sop, demographics, "MR", study, series)
        ds.InstanceNumber = z + 1
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.SliceThickness = float(spacing[2])
        ds.SpacingBetweenSlices = float(spacing[2])
        ds.ImagePositionPatient = [0.0, 0.0, float(z * spacing[2])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceLocation = float(z * spacing[2])
        _set_pixels(ds, vol[z].astype(np.uint16), rgb=False)
        p = folder / f"slice_{z:04d}.dcm"
        _write(ds, p)
        paths.append(p)
    return paths
