"""Series-type labels against a hand-labelled table of real files (pydicom's and nibabel's test
data: `tests/dicom/series-types-reference.csv`, each row with why it was labelled so), and against
the words of the files' own series descriptions where they are unambiguous (the baseline a
dcm2bids configuration writes by hand: a regex over SeriesDescription).

    python benchmarks/series_types.py

Prints precision and recall per label for Quire's rules and for the description-only baseline.
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quire_assets.dicom.features import load_feature_sets  # noqa: E402
from quire_assets.dicom.records import extract  # noqa: E402
from quire_assets.dicom.series_types import series_types  # noqa: E402

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "dicom" / "series-types-reference.csv"
# What a hand-written dcm2bids-style configuration would say from the description alone.
DESCRIPTION_WORDS = {"localizer": r"localizer|localiser|scout|pilot|survey", "DWI": r"dti|dwi|diff",
                     "BOLD": r"bold|rest|fmri", "T1w": r"t1|mprage", "T2w": r"t2", "FLAIR": r"flair",
                     "MRA": r"angio|tof|mip|mra"}


def reference_rows() -> list[dict]:
    import nibabel
    import pydicom

    roots = {"pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
             "nibabel": Path(nibabel.__file__).parent / "nicom" / "tests" / "data"}
    with REFERENCE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        data = (roots[row["package"]] / row["file"]).read_bytes()
        row["bytes"] = gzip.decompress(data) if row["file"].endswith(".gz") else data
        row["expected"] = set(row["labels"].split())
    return rows


def labelled(rows: list[dict]) -> list[tuple[set[str], set[str], str | None]]:
    """(expected, Quire's labels, the description) per reference file."""
    features = load_feature_sets()
    out = []
    for row in rows:
        data = row["bytes"]
        record = extract(row["file"], len(data), lambda n, data=data: data[:n], features, 64 * 1024)
        out.append((row["expected"], set(series_types([record])[0]), record["metadata"].get("SeriesDescription")))
    return out


def scores(pairs: list[tuple[set[str], set[str]]]) -> dict[str, tuple[int, int, int]]:
    """label → (true positives, false positives, false negatives)."""
    counts: dict[str, Counter] = {}
    for expected, found in pairs:
        for label in expected | found:
            c = counts.setdefault(label, Counter())
            c["tp" if label in expected and label in found else "fp" if label in found else "fn"] += 1
    return {label: (c["tp"], c["fp"], c["fn"]) for label, c in sorted(counts.items())}


def main() -> None:
    results = labelled(reference_rows())
    ours = scores([(e, f) for e, f, _ in results])
    words = scores([(e & set(DESCRIPTION_WORDS), {k for k, w in DESCRIPTION_WORDS.items()
                                                  if d and re.search(w, d, re.IGNORECASE)}) for e, _, d in results])
    print(f"{len(results)} real files, hand-labelled ({REFERENCE.name})\n")
    print(f"{'label':20} {'n':>3}  {'Quire precision':>15} {'recall':>7}   {'description-only precision':>26} {'recall':>7}")
    for label, (tp, fp, fn) in ours.items():
        base = words.get(label) if label in DESCRIPTION_WORDS else None
        cell = f"{'(no words for it)':>26} {'':>7}"
        if base:
            precision = f"{base[0] / (base[0] + base[1]):.2f}" if base[0] + base[1] else "-"
            cell = f"{precision:>26} {base[0] / (base[0] + base[2]):7.2f}"
        print(f"{label:20} {tp + fn:3}  {tp / (tp + fp) if tp + fp else 0:15.2f} {tp / (tp + fn) if tp + fn else 0:7.2f}"
              f"   {cell}")


if __name__ == "__main__":
    main()
