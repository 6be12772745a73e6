"""Read a DICOM header (everything before the pixel data) from a byte prefix of a file.

The reader works on a *prefix* of the file: local files read their first 64 KiB, S3 objects
fetch it with a ranged GET. When the header runs past the prefix, the caller is asked for a
longer one. Nothing here opens sockets or decodes pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

DEFAULT_PREFIX = 64 * 1024
LOCAL_PREFIX = 16 * 1024  # a local re-read is cheap: start small
# The most of a file read to find the end of its header. Real headers are kilobytes (an enhanced
# multi-frame CT's per-frame groups a few megabytes); a header that runs on past this holds a
# corrupt length, and reading on would hold the whole file in memory.
MAX_HEADER_BYTES = 64 * 1024 * 1024
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
UNDEFINED_LENGTH = 0xFFFFFFFF
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# Magic numbers of containers people leave in archives: they are not DICOM, whatever the name.
_CONTAINERS = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"\x28\xb5\x2f\xfd": "zstd",
}
# Names that are never DICOM unless the file says otherwise (the 'DICM' magic): NBIA's
# annotations and manifests, macOS litter, notes.
SKIPPED_SUFFIXES = frozenset(
    {".xml", ".csv", ".txt", ".json", ".md", ".html", ".htm", ".pdf", ".png", ".jpg", ".jpeg", ".tsv",
     ".log", ".py", ".ini", ".yaml", ".yml", ".nii", ".mhd", ".raw"}
)


class HeaderError(Exception):
    """A file that cannot be cataloged: ``reason`` is a short code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NeedMoreBytes(Exception):
    """The header runs past the prefix that was read."""


@dataclass
class Header:
    dataset: Dataset
    header_bytes: int  # where the pixel data (or the file) starts
    # Why the file is not whole (cut in its header or pixel data, an image without pixels): the
    # header read up to there is still cataloged, and the instance says so.
    damage: str | None = None


def has_preamble(prefix: bytes) -> bool:
    return len(prefix) >= 132 and prefix[128:132] == b"DICM"


def classify_prefix(name: str, prefix: bytes, size: int) -> None:
    """Raise ``HeaderError`` for files that can be told apart without parsing."""
    if size == 0:
        raise HeaderError("empty", "the file has 0 bytes")
    if has_preamble(prefix):
        return
    for magic, kind in _CONTAINERS.items():
        if prefix.startswith(magic):
            raise HeaderError("compressed_container", f"a {kind} file, not DICOM: unpack it first")
    base = name.rsplit("/", 1)[-1]
    suffix = ("." + base.rsplit(".", 1)[-1].lower()) if "." in base[1:] else ""
    if base.startswith(".") or suffix in SKIPPED_SUFFIXES:
        raise HeaderError("skipped", f"not a DICOM file type ({suffix or base})")


def _pixel_data_truncated(ds: Dataset, buffer: bytes, offset: int, size: int) -> str | None:
    """If the pixel data element declares more bytes than the file holds, say so."""
    head = buffer[offset : offset + 12]
    if len(head) < 8:
        return None
    implicit, little = ds.original_encoding
    endian = ">" if little is False else "<"
    # Some writers encode the pixel data element implicitly inside an explicit-VR file.
    if implicit or not head[4:6].isalpha():
        length = struct.unpack(endian + "I", head[4:8])[0]
        header_len = 8
    else:
        if len(head) < 12:
            return None
        length = struct.unpack(endian + "I", head[8:12])[0]
        header_len = 12
    if length != UNDEFINED_LENGTH and offset + header_len + length > size:
        return f"pixel data declares {length} bytes, the file ends {size - offset - header_len} bytes after its start"
    return None


def _is_image(ds: Dataset) -> bool:
    """Image storage SOP classes carry pixel data; a file of one that ends without it was cut."""
    try:
        sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
        return sop_class is not None and "Image Storage" in UID(str(sop_class)).name
    except Exception:
        return False


def _short_element(ds: Dataset) -> tuple[BaseTag, str] | None:
    """The element whose value the end of the file cut, and what is missing."""
    for tag, elem in ds._dict.items():
        if (
            isinstance(elem, RawDataElement)
            and elem.length != UNDEFINED_LENGTH
            and elem.value is not None
            and len(elem.value) < elem.length
        ):
            return tag, f"element {tag} declares {elem.length} bytes, {len(elem.value)} remain"
    return None


def parse_prefix(name: str, prefix: bytes, size: int) -> Header:
    """Parse the header held in ``prefix`` (the first bytes of a ``size``-byte file).

    Raises ``NeedMoreBytes`` when the prefix is shorter than the file and the header may run
    on, and ``HeaderError`` when the file cannot be cataloged.
    """
    classify_prefix(name, prefix, size)
    complete = len(prefix) >= size
    fp = io.BytesIO(prefix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except zlib.error as exc:
        # Deflated Explicit VR Little Endian: pydicom inflates everything after the file meta at
        # once, so a deflated file is parsed whole (they are rare, and small: they are compressed).
        if not complete:
            raise NeedMoreBytes() from exc
        raise HeaderError("truncated", f"the deflated data set ends early ({exc})") from exc
    except (EOFError, OSError, struct.error, OverflowError) as exc:  # OSError: pydicom's "no tag to read"
        if not complete:
            raise NeedMoreBytes() from exc
        if has_preamble(prefix):
            raise HeaderError("truncated", f"the header ends early ({exc})") from exc
        raise HeaderError("not_dicom", f"no DICOM preamble and unparseable ({type(exc).__name__})") from exc
    except (InvalidDicomError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        if not complete and has_preamble(prefix):
            raise NeedMoreBytes() from exc
        reason = "unreadable" if has_preamble(prefix) else "not_dicom"
        raise HeaderError(reason, f"{type(exc).__name__}: {exc}"[:300]) from exc
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        # Inflated whole without a zlib error: the data set is complete, and offsets in this file
        # say nothing of offsets in the inflated data set.
        return Header(dataset=ds, header_bytes=size)
    offset = fp.tell()
    short = _short_element(ds)
    stopped_at_pixels = offset < len(prefix)
    if not complete and (short or not stopped_at_pixels):
        raise NeedMoreBytes()
    if short:
        tag, detail = short
        if not has_preamble(prefix) and "SOPInstanceUID" not in ds and "StudyInstanceUID" not in ds:
            raise HeaderError("not_dicom", f"no DICOM preamble, no identifying UIDs, and {detail}")
        del ds[tag]  # its value is cut: what comes before it is whole
        return Header(dataset=ds, header_bytes=offset, damage=detail)
    if stopped_at_pixels:
        return Header(dataset=ds, header_bytes=offset, damage=_pixel_data_truncated(ds, prefix, offset, size))
    if _is_image(ds):
        return Header(dataset=ds, header_bytes=offset, damage="an image whose file ends before its pixel data")
    return Header(dataset=ds, header_bytes=offset)


def read_header(name: str, size: int, fetch: Callable[[int], bytes], first: int = DEFAULT_PREFIX) -> Header:
    """Read the header of a ``size``-byte file, where ``fetch(n)`` returns its first ``n`` bytes.

    Starts with ``first`` bytes and doubles the prefix only while the header runs past it, up to
    ``MAX_HEADER_BYTES``.
    """
    length = min(first, size, MAX_HEADER_BYTES)
    while True:
        prefix = fetch(length) if size else b""
        if len(prefix) < length and len(prefix) < size:
            # The source gave fewer bytes than it listed: the file shrank or the read was cut.
            size = len(prefix)
        try:
            return parse_prefix(name, prefix, size)
        except NeedMoreBytes:
            if length >= MAX_HEADER_BYTES:
                raise HeaderError("unreadable", f"the header runs on past {MAX_HEADER_BYTES >> 20} MiB "
                                  "(a corrupt length?): not read further") from None
            length = min(length * 2, size, MAX_HEADER_BYTES)


def require_uids(ds: Dataset, prefix_had_preamble: bool) -> tuple[str, str, str]:
    """The study, series and SOP instance UIDs, or a ``HeaderError`` saying which are missing."""
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    if sop_class == DICOMDIR_SOP_CLASS:
        raise HeaderError("dicomdir", "a DICOMDIR (media directory), not an instance")
    found = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        try:
            value = ds.get(keyword)
        except Exception:
            value = None
        found[keyword] = str(value).strip() if value else ""
    missing = [k for k, v in found.items() if not v]
    if missing:
        if len(missing) == 3 and not prefix_had_preamble:
            raise HeaderError("not_dicom", "no DICOM preamble and none of the identifying UIDs")
        raise HeaderError("missing_uid", "missing " + ", ".join(missing))
    return found["StudyInstanceUID"], found["SeriesInstanceUID"], found["SOPInstanceUID"]
