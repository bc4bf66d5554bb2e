# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""DICOM demographics from the header only, and the DicomDemographicsd transform."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import numpy as np
import pydicom
import pytest

from monai_fair.data import GroupSpec
from monai_fair.data.dicom import (
    DicomDemographicsd,
    age_from_dates,
    parse_dicom_age,
    read_dicom_demographics,
    write_dicom_image,
    write_dicom_series,
)


@pytest.mark.parametrize(
    "text,years",
    [("045Y", 45.0), ("006M", 0.5), ("012W", 12 * 7 / 365.25), ("003D", 3 / 365.25), ("090y", 90.0), ("", None)],
)
def test_parse_age_forms(text, years):
    assert parse_dicom_age(text) == pytest.approx(years) if years is not None else parse_dicom_age(text) is None


def test_parse_age_rejects_garbage():
    for bad in ("45", "045X", "abcY", "1234Y"):
        with pytest.raises(ValueError, match="Age String"):
            parse_dicom_age(bad)


def test_age_from_dates():
    assert age_from_dates(dt.date(1980, 6, 1), dt.date(2020, 6, 1)) == 40.0
    assert age_from_dates(dt.date(1980, 6, 2), dt.date(2020, 6, 1)) == pytest.approx(39 + 365 / 366, abs=1e-12)
    assert age_from_dates(dt.date(2000, 2, 29), dt.date(2001, 3, 1)) == 1.0
    with pytest.raises(ValueError, match="before birth"):
        age_from_dates(dt.date(2020, 1, 2), dt.date(2020, 1, 1))


def _write(tmp_path, name="a.dcm", **demo):
    return write_dicom_image(tmp_path / name, np.zeros((8, 8), np.uint16), {"PatientID": "P1", **demo}, uid_seed=name)


def test_header_only_read(tmp_path):
    p = _write(tmp_path, PatientSex="F", PatientAge="006M", EthnicGroup="Asian", Manufacturer="ACME")
    real = pydicom.dcmread
    with mock.patch("pydicom.dcmread", side_effect=lambda *a, **k: real(*a, **k)) as spy:
        demo = read_dicom_demographics(p)
    assert spy.call_args.kwargs.get("stop_before_pixels") is True
    assert demo == {
        "sex": "F",
        "age": 0.5,
        "age_source": "PatientAge",
        "ethnic_group": "Asian",
        "patient_id": "P1",
        "manufacturer": "ACME",
        "model": None,
        "institution": None,
        "sop_instance_uid": str(pydicom.dcmread(p).SOPInstanceUID),
        "notes": {},
    }


def test_age_from_birth_and_study_date(tmp_path):
    p = _write(tmp_path, PatientSex="M", PatientBirthDate="19700315", StudyDate="20200314")
    demo = read_dicom_demographics(p)
    assert demo["age_source"] == "dates" and 49.99 < demo["age"] < 50.0
    p = _write(tmp_path, "b.dcm", PatientSex="M", PatientBirthDate="19700315")  # no StudyDate: no age
    assert read_dicom_demographics(p)["age"] is None and read_dicom_demographics(p)["sex"] == "M"
    # placeholder birth dates and implausible ages are missing, with the reason (11111111 once gave age 894)
    p = _write(tmp_path, "d.dcm", PatientSex="U", PatientBirthDate="11111111", StudyDate="20050101")
    demo = read_dicom_demographics(p)
    assert demo["age"] is None and demo["notes"]["age"] == "placeholder birth date 11111111 and no PatientAge"
    assert demo["sex"] is None and "'U' (unknown) is read as unknown" in demo["notes"]["sex"]
    p = _write(tmp_path, "e.dcm", PatientSex="O", PatientBirthDate="18800101", StudyDate="20050101")
    demo = read_dicom_demographics(p)
    assert demo["age"] is None and "implausible age 125" in demo["notes"]["age"] and demo["sex"] is None
    p = _write(tmp_path, "c.dcm", PatientAge="45")
    with pytest.raises(ValueError, match="c.dcm.*Age String"):
        read_dicom_demographics(p)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "notdicom.dcm"
    bad.write_bytes(b"hello world, not a dicom file" * 10)
    with pytest.raises(ValueError, match="notdicom.dcm"):
        read_dicom_demographics(bad)
    good = _write(tmp_path, PatientSex="F", PatientAge="045Y")
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="trunc.dcm"):
        read_dicom_demographics(trunc)
    with pytest.raises(FileNotFoundError, match="nope.dcm"):
        read_dicom_demographics(tmp_path / "nope.dcm")


def test_transform_adds_attributes_and_group(tmp_path):
    p = _write(tmp_path, PatientSex="F", PatientAge="067Y")
    spec = GroupSpec.intersection(GroupSpec.categorical("sex", ["F", "M"]), GroupSpec.binned("age", [0, 60, 200]))
    t = DicomDemographicsd(keys="image", group_spec=spec)
    out = t({"image": str(p), "label": 1})
    assert out == {"image": str(p), "label": 1, "group": 1}  # raw attributes never reach a batch
    out = DicomDemographicsd(keys="image", group_spec=spec, keep_attributes=True)({"image": str(p)})
    assert out["sex"] == "F" and out["age"] == 67.0 and out["group"] == 1 and "ethnic_group" in out
    # datalist values win unless overwrite=True
    assert t({"image": str(p), "sex": "M"})["group"] == 3
    assert DicomDemographicsd(group_spec=spec.to_dict(), overwrite=True)({"image": str(p), "sex": "M"})["group"] == 1
    # a series folder: the first file is read
    write_dicom_series(tmp_path / "series", np.zeros((3, 4, 4)), {"PatientSex": "M", "PatientAge": "030Y"})
    out = DicomDemographicsd(attribute_keys={"sex": "gender"})({"image": str(tmp_path / "series")})
    assert out["gender"] == "M" and "age" not in out
    q = _write(tmp_path, "nosex.dcm", PatientAge="030Y")
    with pytest.raises(ValueError, match="nosex.dcm"):
        DicomDemographicsd(group_spec=GroupSpec.categorical("sex", ["F", "M"], unknown="drop"))({"image": str(q)})
    with pytest.raises(ValueError, match=r"nosex.dcm: missing.*sex=None"):
        DicomDemographicsd(group_spec=GroupSpec.categorical("sex", ["F", "M"]))({"image": str(q)})
