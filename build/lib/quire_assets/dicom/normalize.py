"""Turn pydicom values into plain values that both ``json.dumps`` and ``bson.encode`` accept.

Rules: MultiValue → list; PersonName → its original ``Family^Given`` text (non-ASCII intact);
DS/IS → numbers; DA → ``YYYY-MM-DD``; TM → ``HH:MM:SS[.ffffff]``; DT → ISO 8601; binary VRs are
left out; sequences are kept to a bounded depth; empty → ``None``. A value that violates its VR
is kept as its raw text, and the problem is recorded in ``oddities``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"})
MAX_SEQUENCE_DEPTH = 3
MAX_SEQUENCE_ITEMS = 64

_DA = re.compile(r"^(\d{4})[.]?(\d{2})[.]?(\d{2})$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_DT = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?(?P<tz>[+-]\d{4})?$"
)


class Oddities(list):
    """Problems met while normalizing one file: ``{"attribute": ..., "problem": ...}`` entries."""

    def add(self, attribute: str, problem: str) -> None:
        self.append({"attribute": attribute, "problem": problem})


def tag_name(tag: int) -> str:
    tag = Tag(tag)
    return f"({tag.group:04X},{tag.element:04X})"


def normalize_da(text: str) -> str:
    match = _DA.match(text.strip())
    if not match:
        raise ValueError(f"not a DA date: {text!r}")
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day).isoformat()


def normalize_tm(text: str) -> str:
    match = _TM.match(text.strip())
    if not match:
        raise ValueError(f"not a TM time: {text!r}")
    hh, mm, ss, frac = match.groups()
    hour, minute, second = int(hh), int(mm or 0), int(ss or 0)
    # 60 is a leap second, allowed by the standard.
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"time out of range: {text!r}")
    result = f"{hour:02d}:{minute:02d}:{second:02d}"
    return result + (f".{frac.ljust(6, '0')}" if frac else "")


def normalize_dt(text: str) -> str:
    match = _DT.match(text.strip())
    if not match:
        raise ValueError(f"not a DT date-time: {text!r}")
    g = match.groupdict()
    result = g["y"]
    if g["mo"]:
        result += f"-{g['mo']}"
    if g["d"]:
        normalize_da(g["y"] + g["mo"] + g["d"])  # validates the calendar date
        result += f"-{g['d']}"
    if g["h"]:
        result += "T" + normalize_tm(g["h"] + (g["mi"] or "00") + (g["s"] or "00") + (f".{g['f']}" if g["f"] else ""))
    if g["tz"]:
        result += f"{g['tz'][:3]}:{g['tz'][3:]}"
    return result


def _number(value: Any, vr: str) -> int | float:
    if vr == "IS":
        number = int(value)
        # BSON integers are 64-bit; IS is at most 12 characters, but junk may be longer.
        if not -(2**63) <= number < 2**63:
            raise ValueError(f"integer out of range: {value!r}")
        return number
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _scalar(value: Any, vr: str) -> Any:
    """One value of a (possibly multi-valued) element."""
    if value is None or value == "":
        return None
    if vr in ("DS", "IS"):
        return _number(value, vr)
    if vr == "DA":
        return normalize_da(str(value))
    if vr == "TM":
        return normalize_tm(str(value))
    if vr == "DT":
        return normalize_dt(str(value))
    if vr == "PN":
        return str(value)
    if vr in ("FL", "FD"):
        return _number(value, vr)
    if vr in ("US", "SS", "UL", "SL", "SV", "UV"):
        return int(value)
    if vr == "AT":
        return tag_name(value)
    if isinstance(value, bytes):
        raise TypeError("binary value")
    return str(value)


def _raw_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    text = raw.decode("latin-1").strip(" \x00")
    return text or None


def normalize_element(elem: DataElement, name: str, oddities: Oddities, depth: int = 0) -> Any:
    """The JSON/BSON-safe value of one element (``None`` when empty)."""
    vr = str(elem.VR)
    if vr == "SQ":
        return normalize_sequence(elem.value, name, oddities, depth)
    if vr in BINARY_VRS:
        return None
    value = elem.value
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        normalized = [_scalar(v, vr) for v in values]
    except (ValueError, TypeError, OverflowError) as exc:
        oddities.add(name, f"{vr} value kept as text: {exc}")
        text = "\\".join(str(v) for v in values)
        return text.strip() or None
    if not normalized or all(v is None for v in normalized):
        return None
    return normalized[0] if len(normalized) == 1 and elem.VM <= 1 else normalized


def normalize_sequence(items: Iterable[Dataset], name: str, oddities: Oddities, depth: int) -> list | None:
    if depth >= MAX_SEQUENCE_DEPTH:
        oddities.add(name, f"sequence deeper than {MAX_SEQUENCE_DEPTH} levels left out")
        return None
    result = []
    for index, item in enumerate(items):
        if index >= MAX_SEQUENCE_ITEMS:
            oddities.add(name, f"sequence items after the first {MAX_SEQUENCE_ITEMS} left out")
            break
        result.append(normalize_dataset(item, f"{name}[{index}]", oddities, depth + 1))
    return result or None


def normalize_dataset(ds: Dataset, name: str, oddities: Oddities, depth: int) -> dict[str, Any]:
    """A sequence item: every element by keyword (private ones by tag), binary left out."""
    out: dict[str, Any] = {}
    for tag in list(ds.keys()):
        elem = safe_element(ds, tag, f"{name}.{tag_name(tag)}", oddities)
        if elem is None:
            continue
        key = elem.keyword or tag_name(tag)
        value = normalize_element(elem, f"{name}.{key}", oddities, depth)
        if value is not None:
            out[key] = value
    return out


def safe_element(ds: Dataset, tag: int, name: str, oddities: Oddities) -> DataElement | None:
    """``ds[tag]``, or ``None`` after recording why the raw element could not be converted."""
    try:
        return ds[tag]
    except KeyError:
        return None
    except Exception as exc:  # pydicom raises many types for values that violate their VR
        raw = ds.get_item(tag)
        text = _raw_text(raw.value) if isinstance(raw, RawDataElement) else None
        oddities.add(name, f"unreadable value ({type(exc).__name__}: {exc})"[:300])
        if text is None:
            return None
        return DataElement(tag, "UT", text)
