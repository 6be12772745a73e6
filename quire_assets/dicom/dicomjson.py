"""The catalog's normalized values back in DICOM JSON (PS3.18 F.2), for QIDO-RS answers.

The catalog keeps attributes by keyword with plain values (``normalize.py``: dates ISO, numbers as
numbers, sequences as documents). This is the way back: the tag and VR come from pydicom's data
dictionary, dates and times go back to their DICOM form, person names become ``{"Alphabetic": ...}``.
Anything the dictionary does not know (a private attribute kept by creator) is left out: an answer
never holds an attribute under a VR it had to guess.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

# Value representations whose DICOM JSON values are numbers (PS3.18 F.2.3).
NUMBER_VRS = frozenset({"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"})


def tag_of(keyword_or_tag: str) -> int | None:
    """A keyword (``PatientID``) or eight hex digits (``00100020``) as a tag, or None."""
    text = keyword_or_tag.strip()
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        tag = int(text, 16)
        return tag if keyword_for_tag(tag) else None
    return tag_for_keyword(text)


def vr_of(tag: int) -> str:
    """The dictionary's VR (the first of an ambiguous one such as ``US or SS``)."""
    return dictionary_VR(tag).split(" or ")[0]


def dicom_da(value: str) -> str:
    return value.replace("-", "")


def dicom_tm(value: str) -> str:
    return value.replace(":", "")


def dicom_dt(value: str) -> str:
    date, _, rest = value.partition("T")
    zone = ""
    for sign in ("+", "-"):
        if sign in rest:
            rest, _, tail = rest.partition(sign)
            zone = sign + tail.replace(":", "")
    return dicom_da(date) + dicom_tm(rest) + zone


def _value(vr: str, value: Any) -> Any:
    if vr == "PN":
        return {"Alphabetic": str(value)}
    if vr == "DA":
        return dicom_da(str(value))
    if vr == "TM":
        return dicom_tm(str(value))
    if vr == "DT":
        return dicom_dt(str(value))
    if vr == "AT":
        return str(value).strip("()").replace(",", "")
    if vr in NUMBER_VRS:
        return value
    return str(value)


def element(keyword: str, value: Any) -> tuple[str, dict] | None:
    """``(tag as 8 hex digits, {"vr": ..., "Value": [...]})`` for one cataloged attribute, or None
    when the dictionary does not know the keyword or the catalog holds no valid value of it (a
    range over a series' instances, a number kept as text because the file broke its VR). An empty value is an element without ``Value``."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = vr_of(tag)
    out: dict[str, Any] = {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if not values:
        return None  # nothing known (a study none of whose series names its modality): left out
    if vr != "SQ" and any(isinstance(v, dict) for v in values):
        return None  # a series' range of a value that varies by instance: no one value to answer
    if vr in NUMBER_VRS and any(isinstance(v, str) for v in values):
        return None  # a value that broke its VR, kept as text by the catalog: not valid DICOM JSON
    if vr == "SQ":
        items = [dataset(item) for item in values if isinstance(item, dict)]
        if items:
            out["Value"] = items
    elif any(v is not None for v in values):
        out["Value"] = [None if v is None else _value(vr, v) for v in values]
    return f"{tag:08X}", out


def dataset(attributes: dict[str, Any]) -> dict[str, dict]:
    """A DICOM JSON dataset of keyword → normalized value, in tag order."""
    elements = (element(k, v) for k, v in attributes.items())
    return dict(sorted(e for e in elements if e is not None))
