"""A fast path for the common case: walk the header bytes once and decode only the feature-set
attributes, instead of building a full pydicom dataset.

It handles files with the DICOM preamble in explicit or implicit VR little endian, with the
character sets most archives use (ASCII, Latin-1, UTF-8). Anything else, and anything odd (a
value that violates its VR, a missing UID, a truncated file, a sequence among the features, an
ambiguous VR), returns ``None``, and the caller takes the pydicom path, which stays the reference:
a test checks that both paths give identical records on every file pydicom ships and on the
sample archive.
"""

from __future__ import annotations

import math
import re
import struct
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.header import DICOMDIR_SOP_CLASS, PIXEL_TAGS, UNDEFINED_LENGTH
from quire_assets.dicom.normalize import normalize_da, normalize_dt, normalize_tm

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
CHARSETS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
NUMERIC = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
SKIPPED_VRS = {"OB", "OD", "OF", "OL", "OV", "OW"}
UIDS = {0x0020000D: "StudyInstanceUID", 0x0020000E: "SeriesInstanceUID", 0x00080018: "SOPInstanceUID"}
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_H = struct.Struct("<HH")
_HHI = struct.Struct("<HHI")
_EXPLICIT = struct.Struct("<HH2sH")
_I = struct.Struct("<I")
_HALF = struct.Struct("<H")


class _Plan:
    """What to look for, computed once per feature set rather than once per file."""

    def __init__(self, features: FeatureSets):
        standard = [f for f in features.all if not f.is_private]
        self.wanted = frozenset(f.tag for f in standard if f.tag >> 16 != 0x0002) | frozenset(UIDS)
        self.private = {(f.private_group, f.private_creator): f for f in features.all if f.is_private}
        self.names = {**UIDS, **{f.tag: f.name for f in standard}}
        self.meta = [f for f in standard if f.tag >> 16 == 0x0002]


_plans: dict[str, _Plan] = {}


def _plan(features: FeatureSets) -> _Plan:
    plan = _plans.get(features.fingerprint)
    if plan is None:
        plan = _plans[features.fingerprint] = _Plan(features)
    return plan


class Fallback(Exception):
    """Not the common case: let pydicom read this file."""


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _skip_sequence(buf: bytes, pos: int, explicit: bool) -> int:
    """Skip an undefined-length sequence whose first item starts at ``pos``."""
    while True:
        group, elem, length = _HHI.unpack_from(buf, pos)
        pos += 8
        if group == 0xFFFE and elem == 0xE0DD:
            return pos
        if group != 0xFFFE or elem != 0xE000:
            raise Fallback
        pos = pos + length if length != UNDEFINED_LENGTH else _skip_item(buf, pos, explicit)


def _skip_item(buf: bytes, pos: int, explicit: bool) -> int:
    while True:
        group, elem = _H.unpack_from(buf, pos)
        if group == 0xFFFE and elem == 0xE00D:
            return pos + 8
        pos, _vr, length = _element_header(buf, pos, explicit)
        pos = pos + length if length != UNDEFINED_LENGTH else _skip_sequence(buf, pos, explicit)


def _element_header(buf: bytes, pos: int, explicit: bool) -> tuple[int, str | None, int]:
    """(value position, VR or None for implicit, value length)."""
    if explicit:
        _, _, vr, short = _EXPLICIT.unpack_from(buf, pos)
        if vr in LONG_VRS:
            return pos + 12, vr.decode(), _I.unpack_from(buf, pos + 8)[0]
        if not vr.isalpha():
            raise Fallback
        return pos + 8, vr.decode(), short
    return pos + 8, None, _I.unpack_from(buf, pos + 4)[0]


def _walk(buf: bytes, size: int, plan: _Plan) -> tuple[dict[int, tuple[str, bytes]], dict, str, dict]:
    """The raw (VR, bytes) of every wanted top-level element, the file meta values, the charset,
    and the metadata names of the private elements found."""
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise Fallback
    pos = 132
    meta: dict[int, bytes] = {}
    while pos + 8 <= len(buf):
        group, elem = _H.unpack_from(buf, pos)
        if group != 0x0002:
            break
        pos, _vr, length = _element_header(buf, pos, True)
        meta[(group << 16) | elem] = buf[pos : pos + length]
        pos += length
    syntax = meta.get(0x00020010, b"").rstrip(b"\0 ").decode("latin_1")
    if syntax in (BIG_ENDIAN, DEFLATED) or not syntax:
        raise Fallback
    explicit = syntax != IMPLICIT_LE
    wanted = plan.wanted
    private = plan.private
    private_tags: dict[int, str] = {}
    raw: dict[int, tuple[str, bytes]] = {}
    charset = ""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise Fallback  # the header runs past what was read (or the file ends without pixels)
        group, elem = _H.unpack_from(buf, pos)
        tag = (group << 16) | elem
        start, vr, length = _element_header(buf, pos, explicit)
        if tag in PIXEL_TAGS:
            if length != UNDEFINED_LENGTH and start + length > size:
                raise Fallback  # truncated: the pydicom path says so, in its words
            break
        if length == UNDEFINED_LENGTH:
            if tag in wanted or tag in private_tags:
                raise Fallback
            pos = _skip_sequence(buf, start, explicit)
            continue
        if start + length > end:
            raise Fallback
        if tag == 0x00080005:
            charset = buf[start : start + length].decode("latin_1").strip(" \0")
        if group & 1 and 0x10 <= elem <= 0xFF and private:
            creator = buf[start : start + length].decode("latin_1").rstrip(" \0")
            feature = private.get((group, creator))
            if feature is not None:
                private_tags[(group << 16) | (elem << 8) | feature.private_offset] = feature.name
        if tag in wanted or tag in private_tags:
            if vr is None:
                if tag in private_tags:
                    raise Fallback  # implicit VR private data: pydicom's private dictionary decides
                vr = _dictionary_vr(tag)
            raw[tag] = (vr, buf[start : start + length])
        pos = start + length
    return raw, meta, charset, private_tags


def _decode(vr: str, data: bytes, encoding: str) -> Any:
    """pydicom's conversion for this VR, then Quire's normalization; ``Fallback`` on anything odd."""
    if vr in SKIPPED_VRS:
        return None
    if vr in NUMERIC:
        code = NUMERIC[vr]
        width = struct.calcsize(code)
        if len(data) % width:
            raise Fallback
        values = list(struct.unpack(f"<{len(data) // width}{code}", data))
        if vr in ("FL", "FD") and not all(math.isfinite(v) for v in values):
            raise Fallback
        if not values:
            return None
        return values[0] if len(values) == 1 else values
    if vr in ("SQ", "UN", "AT") or " or " in vr:
        raise Fallback
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Fallback from exc
    if vr in ("LT", "ST", "UT"):
        items = [text.rstrip("\0 ")]
    elif vr in ("LO", "SH", "UC"):
        items = [v.rstrip("\0 ") for v in text.split("\\")]
    elif vr == "PN":
        items = data.rstrip(b"\x00 ").decode(encoding).split("\\")
    elif vr == "AE":
        items = [v.strip() for v in text.split("\\")]
    elif vr == "DS":
        items = text.strip().rstrip(" \0").split("\\")
    else:  # AS CS DA DT IS TM UI UR
        items = text.rstrip(" \0").split("\\")
    out = []
    for item in items:
        if vr == "DS":
            out.append(_ds(item))
        elif vr == "IS":
            if item.strip() == "":
                out.append(None)
            elif not _INT.match(item):
                raise Fallback
            else:
                out.append(int(item))
        elif item == "":
            out.append(None)
        elif vr == "DA":
            out.append(_or_fallback(normalize_da, item))
        elif vr == "TM":
            out.append(_or_fallback(normalize_tm, item))
        elif vr == "DT":
            out.append(_or_fallback(normalize_dt, item))
        else:
            out.append(item)
    if not out or all(v is None for v in out):
        return None
    return out[0] if len(out) == 1 else out


def _ds(item: str) -> float | None:
    if item.strip() == "":
        return None
    try:
        value = float(item)
    except ValueError as exc:
        raise Fallback from exc
    if not math.isfinite(value):
        raise Fallback
    return value


def _or_fallback(fn, item: str) -> str:
    try:
        return fn(item)
    except ValueError as exc:
        raise Fallback from exc


def fast_metadata(buf: bytes, size: int, features: FeatureSets) -> dict[str, Any] | None:
    """The feature-set metadata of a file's header bytes, or ``None`` when pydicom must read it."""
    try:
        plan = _plan(features)
        raw, meta, charset, private_names = _walk(buf, size, plan)
        encoding = CHARSETS.get(charset)
        if encoding is None:
            raise Fallback
        names = {**plan.names, **private_names} if private_names else plan.names
        metadata: dict[str, Any] = {}
        for feature in plan.meta:
            if feature.tag in meta:
                value = _decode("UI", meta[feature.tag], encoding) if feature.vr == "UI" else None
                if feature.vr != "UI":
                    raise Fallback
                if value is not None:
                    metadata[feature.name] = value
        for tag, (vr, data) in raw.items():
            value = _decode(vr, data, encoding)
            if value is not None:
                metadata[names[tag]] = value
        sop_class = metadata.get("SOPClassUID") or meta.get(0x00020002, b"").rstrip(b"\0 ").decode("latin_1")
        if sop_class == DICOMDIR_SOP_CLASS:
            raise Fallback
        return metadata
    except (Fallback, struct.error, KeyError, IndexError):
        return None
