"""WADO-RS: an instance's bytes from where the catalog says it is (a folder, S3 or a PACS, through
the same ``FileSource.fetcher`` the ingest reads headers with), its header as DICOM JSON, its
frames and a rendered image; for a researcher, every one of them with the PHI policy applied to
the dataset itself (``PhiPolicy.deidentify``)."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomBytesIO

from quire_assets.catalog.policy import PhiPolicy
from quire_assets.dicom.header import MAX_HEADER_BYTES, read_header
from quire_assets.sources.base import FileEntry
from quire_assets.sources.registry import SourceOptions, source_from_uri

# Frames and rendered images are made from the whole file; bigger instances are refused for them
# (a whole-instance retrieval streams any size).
MAX_DECODE_BYTES = 512 * 1024 * 1024


# What is asked of a source that lists no sizes (a PACS's fetcher returns the instance it retrieved).
UNKNOWN_SIZE = 1 << 40


class InstanceUnavailable(Exception):
    """The catalog knows the instance, but none of its locations can be read now."""


@dataclass(frozen=True)
class Located:
    """Where one cataloged instance is: the file's URI, its source and size."""

    uri: str
    source: str
    size: int

    @classmethod
    def of(cls, doc: dict) -> list[Located]:
        """Each location of an instance document, its main file first."""
        found = []
        for location in sorted(doc.get("locations") or [], key=lambda loc: loc.get("uri") != doc.get("uri")):
            if location.get("uri") and location.get("source"):
                found.append(cls(location["uri"], location["source"], int(doc.get("size") or 0)))
        return found


class Reader:
    """Reads instances from their sources (each source opened once per reader)."""

    def __init__(self, options: SourceOptions):
        self.options = options
        self.sources: dict[str, object] = {}

    def _fetch(self, located: Located):
        source = self.sources.get(located.source)
        if source is None:
            source = self.sources[located.source] = source_from_uri(located.source, self.options)
        return source.fetcher(FileEntry(located.uri, located.size, ""))

    def whole(self, locations: list[Located]) -> bytes:
        """The instance's bytes from the first location that reads whole."""
        problems = []
        for located in locations:
            try:
                # A PACS lists no sizes (the catalog holds 0): its fetcher retrieves the whole instance.
                data = self._fetch(located)(located.size or UNKNOWN_SIZE)
            except Exception as exc:  # noqa: BLE001 (a source's own errors vary: the next location may do)
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if len(data) == located.size or (not located.size and data):
                return data
            problems.append(f"{len(data):,} of {located.size:,} bytes read (the file changed since it was cataloged)")
        raise InstanceUnavailable("; ".join(problems) or "no location recorded")

    def header(self, locations: list[Located]) -> Dataset:
        """The instance's header (no pixel data), read as the ingest reads it."""
        problems = []
        for located in locations:
            try:
                if not located.size:
                    data = self.whole([located])
                    return read_header(located.uri, len(data), lambda n, data=data: data[:n]).dataset
                return read_header(located.uri, located.size, self._fetch(located)).dataset
            except Exception as exc:  # noqa: BLE001 (as above)
                problems.append(f"{type(exc).__name__}: {exc}")
        raise InstanceUnavailable("; ".join(problems) or "no location recorded")


def as_researcher(data: bytes, policy: PhiPolicy | None) -> tuple[bytes, str]:
    """The file a caller receives (de-identified for a researcher) and its transfer syntax. An
    admin's file goes as it is: only its header is parsed, for the syntax."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=policy is None)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    if policy is None:
        return data, syntax
    buffer = DicomBytesIO()
    pydicom.dcmwrite(buffer, policy.deidentify(ds), enforce_file_format=True)
    return buffer.getvalue(), syntax


def header_json(ds: Dataset, policy: PhiPolicy | None) -> dict:
    """An instance's header as DICOM JSON. The header was read without its pixel data, so what
    binary values are left (a private block, an icon) are small enough to go inline."""
    shown = policy.deidentify(ds) if policy is not None else ds
    return shown.to_json_dict(bulk_data_threshold=MAX_HEADER_BYTES)


def frames_of(data: bytes, numbers: list[int]) -> tuple[list[bytes], str]:
    """Some frames (1-based) of an instance's pixel data, as stored, and the transfer syntax."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if "PixelData" not in ds:
        raise ValueError("the instance holds no pixel data")
    syntax = ds.file_meta.TransferSyntaxUID
    count = int(ds.get("NumberOfFrames") or 1)
    if any(n < 1 or n > count for n in numbers):
        raise ValueError(f"the instance has frames 1 to {count}")
    if syntax.is_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
    else:
        size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        frames = [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]
    return [frames[n - 1] for n in numbers], str(syntax)


def rendered(data: bytes, frame: int = 1, media: str = "image/png", size: int | None = None) -> bytes:
    """One frame as PNG or JPEG: pydicom decodes it (pylibjpeg's plugins for JPEG, JPEG-LS and
    JPEG 2000), the modality LUT and the first window apply, Pillow encodes it."""
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    pixels = ds.pixel_array
    count = int(ds.get("NumberOfFrames") or 1)
    if not 1 <= frame <= count:
        raise ValueError(f"the instance has frames 1 to {count}")
    if count > 1:
        pixels = pixels[frame - 1]
    if ds.get("PhotometricInterpretation", "").startswith("MONOCHROME"):
        pixels = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype("float64")
        low, high = float(pixels.min()), float(pixels.max())
        pixels = ((pixels - low) / ((high - low) or 1) * 255).astype("uint8")
        if ds.PhotometricInterpretation == "MONOCHROME1":
            pixels = 255 - pixels
        image = Image.fromarray(pixels, mode="L")
    else:
        from pydicom.pixels import convert_color_space

        if ds.PhotometricInterpretation.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_compressed:
            pixels = convert_color_space(pixels, ds.PhotometricInterpretation, "RGB")
        image = Image.fromarray(pixels.astype("uint8"), mode="RGB")
    if size:
        image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG" if media == "image/jpeg" else "PNG")
    return out.getvalue()


def multipart(parts: Iterator[tuple[bytes, str]], boundary: str | None = None) -> tuple[Iterator[bytes], str]:
    """A ``multipart/related`` body of ``(bytes, content type)`` parts, and its boundary."""
    boundary = boundary or secrets.token_hex(16)

    def body() -> Iterator[bytes]:
        for data, content_type in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            yield data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return body(), boundary
