"""A local folder as a DICOM source."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from quire_assets.dicom.records import read_file_prefix
from quire_assets.sources.base import FileEntry, FileSource, SourceError


class LocalFiles(FileSource):
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def list(self) -> Iterator[FileEntry]:
        if not self.root.is_dir():
            raise SourceError(f"the source folder {self.root} does not exist or is not a folder")
        stack = [str(self.root)]
        while stack:
            top = stack.pop()
            try:
                with os.scandir(top) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                raise SourceError(f"cannot list {top}: {exc.strerror}") from exc
            subdirs = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat()
                    yield FileEntry(entry.path, st.st_size, f"{st.st_mtime_ns}:{st.st_size}")
            stack.extend(reversed(subdirs))

    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        return read_file_prefix(entry.uri)
