"""A local folder as a DICOM source.

Every name under the folder is accounted for. Regular files are read. Anything else is recorded
and never opened: a FIFO or a device could block a reader or never end. That covers named pipes,
sockets, devices, symbolic links to nothing or in a loop, and links to folders, which are not
followed (that is how loops are avoided). A subfolder that cannot be listed is recorded as an
``io_error`` with the OS's message, and the rest of the archive is read. A name that is not valid UTF-8 gets a lossless URI
(``file://`` and its bytes percent-encoded), because a catalog holds text.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.records import error_record, extract, read_file_prefix
from quire_assets.sources.base import FileEntry, FileSource, SourceError
from quire_assets.sources.registry import SourceOptions

_KINDS = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "symbolic link to a folder (links to folders are not followed)"))


def uri_of(path: str) -> str:
    """The path itself, or ``file://`` and its bytes percent-encoded when it is not valid UTF-8."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:  # os.scandir gives undecodable bytes as surrogates
        return "file://" + quote(os.fsencode(path), safe="/")


def path_of(uri: str) -> str:
    return os.fsdecode(unquote_to_bytes(uri.removeprefix("file://"))) if uri.startswith("file://") else uri


def refusal(path: str) -> tuple[str, str] | None:
    """Why this name is not opened, as (reason, detail); None for a regular file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        link = " (a symbolic link" + (" in a loop)" if exc.errno == errno.ELOOP else " to nothing)") if os.path.islink(path) else ""
        return "io_error", f"{exc.strerror}{link}"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode) and not os.path.islink(path):  # a folder the listing could not open
        try:
            os.scandir(path).close()
            detail = "a folder that could not be listed"
        except OSError as exc:
            detail = f"{exc.strerror}: a folder that cannot be listed (its files are not cataloged)"
        return "io_error", detail
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
    return "skipped", f"a {kind}, not a regular file: not opened"


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}"


def _version(path: str) -> str | None:
    try:
        return _stamp(os.stat(path))
    except OSError:
        return None


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
                if top == str(self.root):
                    raise SourceError(f"cannot list {top}: {exc.strerror}") from exc
                # Its files cannot be known: the folder itself is recorded (``refusal`` says why),
                # and the rest of the archive goes on.
                yield FileEntry(uri_of(top), 0, f"unlisted:{exc.errno}")
                continue
            subdirs = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError:  # a link to nothing or a loop: its own times, and the reader says why
                    st = entry.stat(follow_symlinks=False)
                yield FileEntry(uri_of(entry.path), st.st_size if stat.S_ISREG(st.st_mode) else 0, _stamp(st))
            stack.extend(reversed(subdirs))

    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        return read_file_prefix(path_of(entry.uri))

    def extract_batch(self, entries: Sequence[FileEntry], features: FeatureSets, first_bytes: int,
                      fast: bool) -> list[dict]:
        records = []
        for entry in entries:
            path = path_of(entry.uri)
            refused = refusal(path)
            if refused:
                records.append(error_record(entry.uri, *refused, size=entry.size))
                continue
            record = extract(entry.uri, entry.size, self.fetcher(entry), features, first_bytes, fast=fast)
            if record.get("reason") != "io_error" and _version(path) != entry.version:
                # Written to while listed or read: what was read may be half old, half new. The index
                # keeps the listing's version, so the next ingest sees a change and reads it again.
                record = error_record(entry.uri, "io_error", "the file changed while it was read (its size or "
                                      "modification time): the next ingest reads it again", size=entry.size)
            records.append(record)
        return records


def open_source(uri: str, options: SourceOptions) -> LocalFiles:
    """A folder, or ``file:///folder``."""
    return LocalFiles(uri.removeprefix("file://"))
