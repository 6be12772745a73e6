"""Names people read for the catalog's fields: Quire's own fields from the table below, attributes
from the DICOM dictionary (``metadata.KVP`` → "KVP", ``slice_thickness`` → "Slice Thickness"). The
raw field name stays what filter documents use; the dashboard shows it on hover."""

from __future__ import annotations

from functools import cache

from pydicom.datadict import dictionary_description, keyword_dict

from quire_assets.dicom.records import snake_case

# Quire's fields (and the attributes whose dictionary name is long where a column is narrow).
OWN = {
    "patient_id": "Patient", "patient_name": "Patient name", "patient_sex": "Sex", "patient_birth_date": "Birth date",
    "patient_age": "Age", "accession_number": "Accession", "study_date": "Date", "study_time": "Time",
    "study_description": "Study description", "series_description": "Series description",
    "series_number": "Series no.", "instance_number": "Instance no.", "modality": "Modality",
    "modalities": "Modalities", "body_parts": "Body parts", "body_part_examined": "Body part",
    "num_studies": "Studies", "num_series": "Series", "num_instances": "Instances", "num_frames": "Images (frames)",
    "manufacturer_family": "Manufacturer (family)", "manufacturer_model_name": "Model",
    "slice_thickness": "Thickness (mm)", "pixel_spacing": "Pixel spacing (mm)", "kvp": "kVp",
    "series_types": "Labels", "quality_flags": "Quality flags", "complete_volume": "Complete volume",
    "collection_ids": "Collections", "study_instance_uid": "Study UID", "series_instance_uid": "Series UID",
    "sop_instance_uid": "Instance UID", "sop_class_uid": "SOP class", "uri": "File", "uris": "Files",
    "partition_key": "Partition", "sources": "Sources", "source": "Source", "size": "Size (bytes)",
    "varying": "Varying attributes", "oddities": "Value oddities", "series_type_evidence": "Label evidence",
    "annotates": "Annotates", "annotated_by": "Annotated by", "reason": "Reason", "detail": "Detail",
}


@cache
def _dictionary_names() -> dict[str, str]:
    """snake_case field → the DICOM dictionary's name of its attribute."""
    names = {}
    for keyword, tag in keyword_dict.items():
        try:
            names[snake_case(keyword)] = dictionary_description(tag)
        except KeyError:  # a repeating group's keyword
            continue
    return names


def label(field: str) -> str:
    """The name a person reads for ``field`` (a dotted path as filters write it)."""
    if field in OWN:
        return OWN[field]
    head, _, rest = field.partition(".")
    if head == "metadata" and rest in keyword_dict:
        return dictionary_description(keyword_dict[rest])
    if rest and head == "metadata":
        return rest
    if rest and head == "quality":
        return rest.replace("_", " ").capitalize()
    return _dictionary_names().get(field) or field.replace("_", " ").capitalize()


def labels(fields: list[str]) -> dict[str, str]:
    return {field: label(field) for field in fields}
