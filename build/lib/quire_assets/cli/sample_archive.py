"""``quire sample-archive``: a small synthetic archive shaped like LIDC-IDRI."""

from __future__ import annotations

import argparse

from quire_assets.cli.common import whole_number


def cmd_sample_archive(args: argparse.Namespace) -> int:
    from quire_assets.dicom.sample import write_sample_archive

    counts = write_sample_archive(args.directory, patients=args.patients, slices=args.slices, matrix=args.matrix)
    print(f"wrote a sample archive to {args.directory}: {counts['patients']} patients, {counts['studies']} studies, "
          f"{counts['series']} series, {counts['instances']} DICOM files, {counts['other_files']} other files")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample-archive", help="write a small synthetic LIDC-IDRI-shaped archive")
    p.add_argument("directory")
    p.add_argument("--patients", type=whole_number(1), default=6)
    p.add_argument("--slices", type=whole_number(1), default=8, help="slices per CT series")
    p.add_argument("--matrix", type=whole_number(8), default=16, help="rows and columns of each image (512: full size)")
    p.set_defaults(func=cmd_sample_archive)
