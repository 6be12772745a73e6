"""``quire sample-archive``: a small synthetic archive shaped like LIDC-IDRI, or a hospital's."""

from __future__ import annotations

import argparse

from quire_assets.cli.common import whole_number


def cmd_sample_archive(args: argparse.Namespace) -> int:
    if args.showcase:
        from quire_assets.dicom.showcase import write_showcase_archive

        counts = write_showcase_archive(args.directory, studies=args.studies, matrix=args.matrix)
    else:
        from quire_assets.dicom.sample import write_sample_archive

        counts = write_sample_archive(args.directory, patients=args.patients, slices=args.slices, matrix=args.matrix)
    print(f"wrote a {'showcase' if args.showcase else 'sample'} archive to {args.directory}: {counts['patients']} patients, {counts['studies']} studies, "
          f"{counts['series']} series, {counts['instances']} DICOM files, {counts['other_files']} other files")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample-archive", help="write a small synthetic archive: LIDC-IDRI-shaped, or a hospital's "
                                              "(--showcase)")
    p.add_argument("directory")
    p.add_argument("--showcase", action="store_true",
                   help="a hospital-shaped archive: CT, MR and DX of several vendors over a decade, patients of all "
                        "ages, a few known defects (what `quire demo` writes)")
    p.add_argument("--studies", type=whole_number(1), default=48, help="studies of the showcase archive")
    p.add_argument("--patients", type=whole_number(1), default=6)
    p.add_argument("--slices", type=whole_number(1), default=8, help="slices per CT series")
    p.add_argument("--matrix", type=whole_number(8), default=16, help="rows and columns of each image (512: full size)")
    p.set_defaults(func=cmd_sample_archive)
