"""Manufacturer families: the many spellings of one vendor in ``Manufacturer`` (0008,0070) as one
name, for questions ("series from Philips"), facets (``manufacturer_family``) and the report.

Archives hold what each scanner wrote: ``GE MEDICAL SYSTEMS``, ``GE Healthcare``, ``G.E.``;
``Philips``, ``Philips Medical Systems``, ``Philips Healthcare``; ``TOSHIBA``, ``TOSHIBA_MEC``
(now Canon). A maintained table, because no library keeps one: a spelling is matched by the words
it starts with, after upper-casing and turning punctuation into spaces. Extend it here (and tell
us): the first family whose pattern matches wins.
"""

from __future__ import annotations

import re
from functools import lru_cache

# family → the word sequences a normalized spelling may start with
FAMILIES: dict[str, tuple[str, ...]] = {
    "GE": ("GE", "G E", "GEMS", "GENERAL ELECTRIC", "GE MEDICAL", "GE HEALTHCARE", "OEC"),
    "Siemens": ("SIEMENS",),
    "Philips": ("PHILIPS", "PHILLIPS", "ADAC", "MARCONI", "PICKER"),
    "Canon (Toshiba)": ("CANON", "TOSHIBA", "TOSHIBA MEC"),
    "Hitachi (Fujifilm)": ("HITACHI", "FUJIFILM HEALTHCARE"),
    "Fujifilm": ("FUJIFILM", "FUJI"),
    "Agfa": ("AGFA",),
    "Carestream (Kodak)": ("CARESTREAM", "KODAK"),
    "Hologic": ("HOLOGIC", "LORAD"),
    "Konica Minolta": ("KONICA",),
    "United Imaging": ("UIH", "UNITED IMAGING"),
    "Neusoft": ("NEUSOFT",),
    "Samsung": ("SAMSUNG",),
    "Mindray": ("MINDRAY",),
    "Esaote": ("ESAOTE",),
    "Varian": ("VARIAN",),
    "Elekta": ("ELEKTA",),
    "Bruker": ("BRUKER",),
    "Planmeca": ("PLANMECA",),
    "Sectra": ("SECTRA",),
}
_PUNCTUATION = re.compile(r"[^A-Z0-9]+")


def normalized(spelling: str) -> str:
    """``"G.E. Medical-Systems"`` → ``"G E MEDICAL SYSTEMS"``."""
    return _PUNCTUATION.sub(" ", spelling.upper()).strip()


@lru_cache(maxsize=4096)
def manufacturer_family(spelling: str | None) -> str | None:
    """The family a ``Manufacturer`` value belongs to; the value itself, trimmed, when no family
    of the table claims it (so a facet still groups what it does not know); None for none."""
    if not isinstance(spelling, str) or not spelling.strip():
        return None
    text = normalized(spelling)
    for family, starts in FAMILIES.items():
        if any(text == start or text.startswith(start + " ") for start in starts):
            return family
    return spelling.strip()


def family_named(words: str) -> str | None:
    """The family a question's words name ("philips", "toshiba", "ge healthcare", "canon")."""
    text = normalized(words)
    for family, starts in FAMILIES.items():
        if text in starts or normalized(family) == text:
            return family
    return None
