"""The PHI policy: what a researcher (any key without the admin role) sees of each field, per DICOM
keyword ``keep``, ``hash`` or ``drop``, and what is done with the fields it does not name (the
``default``: ``drop`` makes it an allow-list). ``phi-policy.toml`` is the default and documents the
format. The policy is applied once, when the research view is written (``catalog/view.py``), so
that researchers' reads never meet a hidden value."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from quire_assets.dicom.records import snake_case

DEFAULT_POLICY = Path(__file__).with_name("phi-policy.toml")
ACTIONS = ("keep", "hash", "drop")
# Quire's own fields, not attributes of a file: counts, the names of attributes, the shape of a
# series. They hold no value of a patient, so they are kept unless a policy names them.
STRUCTURE = frozenset({"num_studies", "num_series", "num_instances", "num_frames", "damaged_instances",
                       "conflicting_instances", "varying", "damage", "size", "oddities", "quality",
                       "quality_flags", "complete_volume", "series_types", "series_type_evidence"})
# Quire's notes about attributes (``{"attribute": keyword, ...}`` entries): a researcher sees only
# those about attributes the policy shows (a malformed hidden value is often quoted in its problem;
# a label's evidence quotes the values that decided it).
ATTRIBUTE_NOTES = frozenset({"oddities", "series_type_evidence"})
# Fields that repeat an attribute's values under another name take that attribute's rule.
FOLLOWS = {"partition_key": "AccessionNumber", "accession_numbers": "AccessionNumber",
           "study_instance_uids": "StudyInstanceUID", "modalities": "Modality", "body_parts": "BodyPartExamined",
           "locations": "uris", "sources": "source", "manufacturer_family": "Manufacturer",
           "annotates": "SeriesInstanceUID", "annotated_by": "SeriesInstanceUID"}
# Documents of attributes, walked key by key under the default rule (``conflicts``: attribute →
# the values an instance's copies hold).
CONTAINERS = frozenset({"metadata", "instance_ranges", "conflicts"})
# Never in the research view: which studies other researchers put in their collections.
RESEARCHER_PRIVATE = frozenset({"collection_ids"})
# The keys of the catalog's levels: hashing them is fine, dropping them would leave nothing to key on.
KEY_ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_INDEX = re.compile(r"\[\d+\]")
# What a viewer needs to decode and show an image (Image Pixel, palette and VOI LUT modules, frame
# layout): no value of a patient, so a retrieved instance keeps them unless the policy names them.
# Text burned into the pixels is out of any header policy's reach (docs/security.md).
IMAGE_PIXELS = frozenset({
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "SamplesPerPixel", "PhotometricInterpretation", "Rows",
    "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration",
    "PixelAspectRatio", "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
    "NumberOfFrames", "FrameIncrementPointer", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction",
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod", "ICCProfile",
    "SpecificCharacterSet"})
# Value representations a pseudonym (16 hex digits) is a valid value of; a hashed attribute of any
# other VR (a date, a number, a sequence) is removed from a retrieved instance instead.
PSEUDONYM_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"})


class PolicyError(ValueError):
    """A policy file Quire cannot apply."""


@dataclass(frozen=True)
class PhiPolicy:
    rules: dict[str, str]  # DICOM keyword (or a field of Quire's: uri, uris, source) → action
    salt: bytes
    default: str = "keep"  # for the fields no rule names

    @classmethod
    def load(cls, path: str | Path | None, salt: bytes) -> PhiPolicy:
        path = Path(path) if path else DEFAULT_POLICY
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"cannot read the PHI policy {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not TOML: {exc}") from exc
        rules = data.get("fields")
        if not isinstance(rules, dict):
            raise PolicyError(f"{path}: needs a [fields] table of KEYWORD = \"keep\" | \"hash\" | \"drop\"")
        for field, action in rules.items():
            if action not in ACTIONS:
                raise PolicyError(f"{path}: {field} = {action!r}: use one of {', '.join(ACTIONS)}")
        for field in KEY_ATTRIBUTES:
            if rules.get(field) == "drop" or (data.get("policy", {}).get("default") == "drop" and field not in rules):
                raise PolicyError(f"{path}: {field} keys the catalog: keep or hash it, never drop it")
        default = data.get("policy", {}).get("default", "keep")
        if default not in ("keep", "drop"):
            raise PolicyError(f"{path}: [policy] default = {default!r}: use keep or drop")
        return cls(rules=dict(rules), salt=salt, default=default)

    @cached_property
    def names(self) -> dict[str, str]:
        """Every document key a rule covers (the keyword and its snake_case copy) → action."""
        names = {**{snake_case(k): a for k, a in self.rules.items()}, **self.rules}
        for field, keyword in FOLLOWS.items():
            names.setdefault(field, names.get(keyword, names.get(snake_case(keyword), self.default)))
        names.update(dict.fromkeys(STRUCTURE - names.keys(), "keep"))
        names.update(dict.fromkeys(RESEARCHER_PRIVATE, "drop"))
        return names

    @cached_property
    def fingerprint(self) -> str:
        """Names the view this policy and secret write: equal for equal policies and secrets, and
        telling nothing of the secret."""
        text = json.dumps({"default": self.default, "rules": self.rules}, sort_keys=True)
        return hmac.new(self.salt, b"quire-research-view:" + text.encode(), hashlib.sha256).hexdigest()[:16]

    def hidden(self, path: str) -> str | None:
        """The action (``hash`` or ``drop``) hiding a dotted field path, if any: a part a rule
        hides, or a field no rule names under a ``drop`` default."""
        names, granted = self.names, False
        for part in _INDEX.sub("", path).split("."):
            action = names.get(part)
            if action in ("hash", "drop"):
                return action
            if action == "keep":
                granted = True
            elif not granted and part not in CONTAINERS and self.default == "drop":
                return "drop"
        return None

    def pseudonym(self, value: Any) -> str:
        return hmac.new(self.salt, str(value).encode(), hashlib.sha256).hexdigest()[:16]

    def _hashed(self, value: Any) -> Any:
        if type(value) is list:
            return [self._hashed(v) for v in value]
        if type(value) is dict:
            return {k: self._hashed(v) for k, v in value.items()}
        return None if value is None else self.pseudonym(value)

    def apply(self, doc: dict) -> dict:
        """A new document holding what a researcher may see of ``doc``: hashed values in place of
        the raw ones, hidden fields absent (in nested documents and sequences too), and the
        problems met while reading only for the attributes that are shown."""
        return self._walk(doc, granted=False)

    @property
    def uid_action(self) -> str:
        """What a retrieved instance's UIDs get that no rule names (references to other instances,
        frames of reference): the rule of the catalog's key UIDs, so that references inside a study
        still resolve to the instances a researcher can ask for."""
        return "hash" if any(self.names.get(k, self.default) == "hash" for k in KEY_ATTRIBUTES) else "keep"

    def uid_pseudonym(self, uid: str) -> str:
        """A hashed UID as a valid UID (``2.25.`` and the pseudonym as a decimal number)."""
        return f"2.25.{int(self.pseudonym(uid), 16)}"

    def deidentify(self, ds: Dataset) -> Dataset:
        """A copy of a whole DICOM dataset as a researcher may retrieve it: the same rules as the
        research view's documents, attribute by attribute and inside sequences; a hashed value
        replaced by its pseudonym (or removed where its VR cannot hold one); private attributes and
        the file meta's application names gone; the image's own structure kept (``IMAGE_PIXELS``)."""
        out = Dataset()
        self._deidentify(ds, out, granted=False)
        meta = FileMetaDataset()
        original = getattr(ds, "file_meta", None)
        if original is not None and "TransferSyntaxUID" in original:
            meta.TransferSyntaxUID = original.TransferSyntaxUID
        if "SOPClassUID" in out and "SOPInstanceUID" in out:
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = out.SOPClassUID, out.SOPInstanceUID
        out.file_meta = meta
        out.DeidentificationMethod = f"Quire PHI policy {self.fingerprint}"
        return out

    def _deidentify(self, ds: Dataset, out: Dataset, granted: bool) -> None:
        names = self.names
        for tag in list(ds.keys()):
            try:
                elem = ds[tag]
            except (ValueError, TypeError):  # a value that breaks its VR: copied raw, never hashed
                elem = ds.get_item(tag)
                readable = False
            else:
                readable = True
            keyword = "" if tag.is_private else elem.keyword if readable else keyword_for_tag(tag)
            action = names.get(keyword) if keyword else None
            if action is None:
                if elem.VR == "UI" and keyword:
                    action = self.uid_action
                elif keyword in IMAGE_PIXELS or granted:
                    action = "keep"
                else:
                    action = self.default
                if action == "keep" and elem.VR == "UI" and self.uid_action == "hash":
                    action = "hash"  # a UID no rule names, private ones too, links like the keys do
            if action == "drop" or (action == "hash" and (elem.VR not in PSEUDONYM_VRS | {"UI"} or not readable)):
                continue
            if readable and elem.VR == "SQ":
                items = []
                for item in elem.value:
                    items.append(inner := Dataset())
                    self._deidentify(item, inner, granted=True)
                out.add_new(tag, "SQ", items)
            elif readable and action == "hash" and elem.value not in (None, ""):
                values = [str(v) for v in elem.value] if elem.VM > 1 else [str(elem.value)]
                if elem.VR == "UI":  # the standard's own UIDs (classes, syntaxes) identify no one
                    hashed = [v if UID(v).name != v else self.uid_pseudonym(v) for v in values]
                else:
                    hashed = [self.pseudonym(v) for v in values]
                out.add_new(tag, elem.VR, hashed if elem.VM > 1 else hashed[0])
            else:
                out[tag] = elem  # kept as read (a new element would re-validate a value that breaks its VR)

    def _walk(self, node: Any, granted: bool) -> Any:
        if type(node) is list:
            return [self._walk(v, granted) for v in node]
        if type(node) is not dict:
            return node
        names, out = self.names, {}
        for key, value in node.items():
            action = names.get(key)
            if action is None:
                if key in CONTAINERS and not granted:
                    out[key] = self._walk(value, False)
                    continue
                action = "keep" if granted else self.default
            if action == "drop":
                continue
            if key in ATTRIBUTE_NOTES and not granted and type(value) is list:
                out[key] = [o for o in value if not (type(o) is dict and self.hidden(str(o.get("attribute", ""))))]
            elif action == "hash":
                out[key] = self._hashed(value)
            else:
                out[key] = self._walk(value, True)
        return out
