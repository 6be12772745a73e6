"""Feature sets: which DICOM attributes are cataloged, and at which level.

A feature set is three plain-text files, ``study.txt``, ``series.txt`` and ``instance.txt``: one
DICOM keyword per line, ``#`` starts a comment. Private attributes are written
``PRIVATE CREATOR,gggg,ee`` (for example ``GEMS_IDEN_01,0009,01``): the element is found through
its private creator block, never at a fixed element number, because the block number differs
from file to file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydicom.datadict import dictionary_VR, tag_for_keyword

FEATURE_LEVELS = ("study", "series", "instance")
_PRIVATE = re.compile(r"^(?P<creator>[^,]+),(?P<group>[0-9A-Fa-f]{4}),(?P<offset>[0-9A-Fa-f]{2})$")


class FeatureSetError(ValueError):
    """A feature-set file names something that is not a DICOM attribute."""


@dataclass(frozen=True)
class Feature:
    """One cataloged attribute: a standard keyword, or a private element by creator."""

    name: str  # the key under ``metadata``: the keyword, or the private spec as written
    level: str
    tag: int | None = None  # standard attributes
    private_creator: str | None = None
    private_group: int | None = None
    private_offset: int | None = None
    vr: str | None = None

    @property
    def is_private(self) -> bool:
        return self.private_creator is not None


def parse_feature_line(line: str, level: str, where: str) -> Feature | None:
    """Parse one line of a feature-set file; ``None`` for blank lines and comments."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    private = _PRIVATE.match(text)
    if private:
        group = int(private["group"], 16)
        if group % 2 == 0:
            raise FeatureSetError(f"{where}: {text!r}: private groups are odd, {private['group']} is not")
        return Feature(
            name=f"{private['creator'].strip()},{private['group'].upper()},{private['offset'].upper()}",
            level=level,
            private_creator=private["creator"].strip(),
            private_group=group,
            private_offset=int(private["offset"], 16),
        )
    tag = tag_for_keyword(text)
    if tag is None:
        raise FeatureSetError(f"{where}: {text!r} is not a DICOM keyword (nor CREATOR,gggg,ee)")
    return Feature(name=text, level=level, tag=tag, vr=dictionary_VR(tag))


@dataclass(frozen=True)
class FeatureSets:
    """The three levels of features, in file order."""

    study: tuple[Feature, ...]
    series: tuple[Feature, ...]
    instance: tuple[Feature, ...]
    source: str = "builtin"

    @property
    def all(self) -> tuple[Feature, ...]:
        return self.study + self.series + self.instance

    def level(self, name: str) -> tuple[Feature, ...]:
        return getattr(self, name)

    def names(self, level: str) -> list[str]:
        return [f.name for f in self.level(level)]

    @property
    def fingerprint(self) -> str:
        """Changes whenever the cataloged attributes change: cached records are then re-read."""
        text = "\n".join(f"{f.level}:{f.name}" for f in self.all)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def _parse_level(text: str, level: str, where: str) -> tuple[Feature, ...]:
    features: list[Feature] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        feature = parse_feature_line(line, level, f"{where}:{number}")
        if feature and feature.name not in seen:
            seen.add(feature.name)
            features.append(feature)
    return tuple(features)


def load_feature_sets(directory: str | os.PathLike[str] | None = None) -> FeatureSets:
    """Load the feature sets from ``directory`` (or the built-in ones).

    A directory may hold any of the three files; a level whose file is missing keeps the
    built-in list, so a user can override only ``series.txt``.
    """
    builtin = resources.files("quire_assets.dicom") / "featuresets"
    levels: dict[str, tuple[Feature, ...]] = {}
    for level in FEATURE_LEVELS:
        custom = Path(directory) / f"{level}.txt" if directory else None
        if custom is not None and custom.is_file():
            levels[level] = _parse_level(custom.read_text(encoding="utf-8"), level, str(custom))
        else:
            entry = builtin / f"{level}.txt"
            levels[level] = _parse_level(entry.read_text(encoding="utf-8"), level, f"builtin {level}.txt")
    if directory and not Path(directory).is_dir():
        raise FeatureSetError(f"feature-set directory {str(directory)!r} does not exist")
    # An attribute belongs to one level: the first that names it (study before series before instance).
    seen: set[str] = set()
    deduped: dict[str, tuple[Feature, ...]] = {}
    for level in FEATURE_LEVELS:
        deduped[level] = tuple(f for f in levels[level] if f.name not in seen)
        seen.update(f.name for f in levels[level])
    return FeatureSets(**deduped, source=str(directory) if directory else "builtin")
