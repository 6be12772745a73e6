"""The incremental index of a source: one SQLite file per source under ``$QUIRE_HOME/index``.

For every file it keeps the uri, size and version (mtime or ETag), the identifying tags
(partition key, study/series/SOP UIDs) and the record the core made of it. A refresh lists the
source and reads only files that are new or changed (or were read with another feature set),
in parallel; files that disappeared leave the index. Each accession partition carries a version
that moves whenever one of its files changes, and the index remembers which version each catalog
holds, so an interrupted ingest is picked up again by the next one.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from quire_assets.dicom.features import FeatureSets
from quire_assets.sources.base import FileEntry, FileSource, Selection
from quire_assets.util import chunks
from quire_assets.util.sqlite import connect, immediate

CHUNK = 32  # files per task handed to a worker
INLINE_BELOW = 64  # fewer changed files than this are read in this process
# Rows written per index transaction: a commit costs ~2 ms on the process that also feeds the
# readers; an interrupted refresh reads at most this many files again next time.
COMMIT_ROWS = 1024
Progress = Callable[[int, int], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    uri TEXT PRIMARY KEY, size INTEGER, version TEXT, fingerprint TEXT, partition_key TEXT,
    study_instance_uid TEXT, series_instance_uid TEXT, sop_instance_uid TEXT, reason TEXT, record TEXT);
CREATE INDEX IF NOT EXISTS files_partition ON files (partition_key);
CREATE INDEX IF NOT EXISTS files_sop ON files (sop_instance_uid, partition_key, reason) WHERE reason IS NULL;
CREATE TABLE IF NOT EXISTS partitions (partition_key TEXT PRIMARY KEY, version INTEGER NOT NULL, seq INTEGER,
    changed INTEGER);
CREATE TABLE IF NOT EXISTS cataloged (catalog TEXT, partition_key TEXT, version INTEGER,
    PRIMARY KEY (catalog, partition_key));
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

# Records are kept deflated against a dictionary: the first readable record this index kept. The
# files of one archive share most of a record's text (keys, UID roots, scanner values), so a
# record of ~1.7 KB packs into 150 to 650 bytes, where deflate alone leaves ~800 (measured on
# radiographs and on the sample archive with pydicom's files), and a row no longer fills a 4 KiB
# page by itself. The dictionary never changes once chosen: every packed record depends on it.
DICTIONARY = "record_dictionary"
# Files read in this process, at most, to find a readable record for the dictionary.
DICTIONARY_PROBE = 16


def pack(text: str, dictionary: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return packer.compress(text.encode()) + packer.flush()


def unpack(value: bytes | str, dictionary: bytes | None) -> str:
    if isinstance(value, str):  # a record kept as text (an index written before records were packed)
        return value
    unpacker = zlib.decompressobj(-15, zdict=dictionary) if dictionary else zlib.decompressobj(-15)
    return (unpacker.decompress(value) + unpacker.flush()).decode()


@dataclass
class RefreshResult:
    listed: int = 0
    read: int = 0
    unchanged: int = 0
    removed: int = 0
    changed_partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _extract_chunk(source: FileSource, entries: Sequence[FileEntry], features: FeatureSets,
                   first_bytes: int, dictionary: bytes | None, fast_path: bool) -> list[tuple]:
    """Index rows for some files, serialized and packed in the worker (cheaper to send back than
    records); without a dictionary yet, the record stays JSON text (``update`` packs it)."""
    rows = []
    for e, r in zip(entries, source.extract_batch(entries, features, first_bytes, fast_path), strict=True):
        text = json.dumps(r, ensure_ascii=False, separators=(",", ":"))
        rows.append((e.uri, e.size, e.version, features.fingerprint, r["partition_key"], r.get("study_instance_uid"),
                     r.get("series_instance_uid"), r.get("sop_instance_uid"), r.get("reason"),
                     pack(text, dictionary) if dictionary else text))
    return rows


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class SourceIndex:
    def __init__(self, source: FileSource, home: Path | str, fast_path: bool = True):
        """The index of ``source`` under ``home`` (Quire's folder); ``fast_path=False`` makes
        pydicom read every header (for comparisons)."""
        self.source = source
        self.fast_path = fast_path
        directory = Path(home) / "index"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{source.key}.sqlite"
        self.conn = connect(self.path)
        self.conn.executescript(_SCHEMA)
        self._dictionary: bytes | None = None

    def close(self) -> None:
        self.conn.close()

    @property
    def dictionary(self) -> bytes | None:
        """The record dictionary, once chosen (by this object or by another process since)."""
        if self._dictionary is None:
            row = self.conn.execute("SELECT value FROM settings WHERE name = ?", (DICTIONARY,)).fetchone()
            self._dictionary = row[0] if row else None
        return self._dictionary

    def __enter__(self) -> SourceIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- refresh ------------------------------------------------------------------------------

    def refresh(
        self,
        features: FeatureSets,
        workers: int | None = None,
        progress: Progress | None = None,
        first_bytes: int | None = None,
        meanwhile: Callable[[], None] | None = None,
        selection: Selection | None = None,
    ) -> RefreshResult:
        """List the source (or the ``selection`` of a PACS); read new and changed files; forget files
        that are gone (from the whole source: a selection forgets nothing)."""
        whole = selection is None or selection.whole
        return self.update(self.source.listing(self.entries, selection), features, workers, progress, first_bytes,
                           complete=whole, meanwhile=meanwhile)

    def update(
        self,
        entries: Iterable[FileEntry],
        features: FeatureSets,
        workers: int | None = None,
        progress: Progress | None = None,
        first_bytes: int | None = None,
        complete: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ) -> RefreshResult:
        """Read the new or changed files among ``entries``. With ``complete``, ``entries`` is the
        whole source, and files of the index missing from it are removed. ``meanwhile`` is called
        once the readers are at work (after any worker process has been forked, so it may start
        a thread), to do something else beside them."""
        start = time.perf_counter()
        first_bytes = first_bytes or self.source.first_bytes
        result = RefreshResult()
        known = {uri: (size, version, fp, key, reason) for uri, size, version, fp, key, reason in
                 self.conn.execute("SELECT uri, size, version, fingerprint, partition_key, reason FROM files")}
        fingerprint = features.fingerprint
        todo: list[FileEntry] = []
        seen: set[str] = set()
        for entry in entries:
            seen.add(entry.uri)
            result.listed += 1
            old = known.get(entry.uri)
            # A file the OS would not let us read (permissions, a link to nothing) is tried again:
            # making it readable changes neither its size nor its modification time.
            if old and old[0] == entry.size and old[1] == entry.version and old[2] == fingerprint \
                    and old[4] != "io_error":
                result.unchanged += 1
            else:
                todo.append(entry)
        # Rows and the versions of their partitions are written in one transaction: a refresh
        # killed half-way leaves every file it wrote in a partition the catalog knows is pending.
        changed: set[str] = set()
        gone = [uri for uri in known if uri not in seen] if complete else []
        for chunk in chunks(gone):
            keys = {known[uri][3] for uri in chunk}
            with immediate(self.conn):
                self.conn.executemany("DELETE FROM files WHERE uri = ?", [(u,) for u in chunk])
                self._bump(sorted(keys))
            changed.update(keys)
        result.removed = len(gone)
        pending: list[tuple] = []

        def write() -> None:
            still = {row[0] for row in pending if row[8] == "io_error" and known.get(row[0], ())[:5] == (
                row[1], row[2], row[3], row[4], "io_error")}
            if still:  # tried again and still unreadable: nothing changed
                result.unchanged += len(still)
                pending[:] = [row for row in pending if row[0] not in still]
            keys = {row[4] for row in pending}
            keys.update(known[row[0]][3] for row in pending if row[0] in known)  # a file may have moved
            with immediate(self.conn):
                self.conn.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?)", pending)
                self._bump(sorted(keys))
            changed.update(keys)
            result.read += len(pending)
            pending.clear()

        probed = self._choose_dictionary(todo, features, first_bytes)
        todo = todo[len(probed):]
        for rows in itertools.chain([probed], self._read(todo, features, workers, progress, first_bytes, meanwhile,
                                                                             len(probed))):
            pending.extend(rows)
            if len(pending) >= COMMIT_ROWS:
                write()
        if pending:
            write()
        result.changed_partitions = sorted(changed)
        result.seconds = time.perf_counter() - start
        return result

    def _choose_dictionary(self, todo: list[FileEntry], features: FeatureSets, first_bytes: int) -> list[tuple]:
        """For an index without a record dictionary: read the first files here until one gives a
        readable record, keep its JSON as the dictionary, and return those files' rows packed."""
        if self.dictionary is not None or not todo:
            return []
        rows: list[tuple] = []
        for entry in todo[:DICTIONARY_PROBE]:
            rows.extend(_extract_chunk(self.source, [entry], features, first_bytes, None, self.fast_path))
            if rows[-1][8] is None:  # no error reason: a record of a DICOM file
                break
        readable = [r for r in rows if r[8] is None]
        with immediate(self.conn):
            # Another process refreshing the same new index may have chosen first: theirs is kept.
            self.conn.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)",
                              (DICTIONARY, (readable or rows)[0][9].encode()))
        return [(*r[:9], pack(r[9], self.dictionary)) for r in rows]

    def _read(self, todo: list[FileEntry], features: FeatureSets, workers: int | None,
              progress: Progress | None, first_bytes: int,
              meanwhile: Callable[[], None] | None = None, already: int = 0) -> Iterator[list[tuple]]:
        total, done = len(todo) + already, already  # ``already``: files read before (the dictionary's probe)
        if progress:
            progress(done, total)
        size = CHUNK if self.source.parallelism == "processes" else 4  # threads wait on I/O: small tasks
        batches = self.source.batches(todo, size)
        workers = workers or default_workers()
        if total < INLINE_BELOW or workers == 1:
            results: Iterable[list[tuple]] = (_extract_chunk(self.source, b, features, first_bytes, self.dictionary, self.fast_path)
                                              for b in batches)
            executor: Executor | None = None
        else:
            if self.source.parallelism == "threads":
                executor = ThreadPoolExecutor(max_workers=getattr(self.source, "threads", workers * 8))
            else:
                executor = ProcessPoolExecutor(max_workers=workers)
            # map submits every task now: a fork-based pool forks all its workers at the first one.
            results = executor.map(_extract_chunk, [self.source] * len(batches), batches, [features] * len(batches),
                                   [first_bytes] * len(batches), [self.dictionary] * len(batches),
                                   [self.fast_path] * len(batches))
        if meanwhile:
            meanwhile()
        try:
            for records in results:
                done += len(records)
                if progress:
                    progress(done, total)
                yield records
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)

    def _bump(self, keys: Sequence[str]) -> None:
        """New version for each changed partition, inside the caller's transaction; ``changed`` is
        one counter per write (the sensors' cursors)."""
        if not keys:
            return
        seq, changed = self.conn.execute(
            "SELECT coalesce(max(seq), 0), coalesce(max(changed), 0) + 1 FROM partitions").fetchone()
        for key in keys:
            seq += 1
            self.conn.execute(
                "INSERT INTO partitions VALUES (?, 1, ?, ?) ON CONFLICT(partition_key) "
                "DO UPDATE SET version = version + 1, changed = excluded.changed",
                (key, seq, changed),
            )

    def changes_since(self, cursor: int) -> tuple[list[str], int]:
        """Partitions changed by refreshes after ``cursor``, and the newest change counter."""
        rows = self.conn.execute(
            "SELECT partition_key, changed FROM partitions WHERE changed > ? ORDER BY seq", (cursor,)).fetchall()
        return [r[0] for r in rows], max([cursor, *(r[1] for r in rows)])

    # ---- reads --------------------------------------------------------------------------------

    def entries(self) -> list[FileEntry]:
        """Every file the index holds, as the source listed it."""
        return [FileEntry(*row) for row in self.conn.execute("SELECT uri, size, version FROM files")]

    def partition_keys(self) -> list[str]:
        """Every partition that holds files, in the order they were first seen."""
        rows = self.conn.execute(
            "SELECT p.partition_key FROM partitions p WHERE EXISTS "
            "(SELECT 1 FROM files f WHERE f.partition_key = p.partition_key) ORDER BY p.seq"
        )
        return [r[0] for r in rows]

    def file_counts(self) -> dict[str, int]:
        """Files per partition (how heavy each one is to catalog)."""
        return dict(self.conn.execute("SELECT partition_key, count(*) FROM files GROUP BY partition_key"))

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        out = {}
        for chunk in chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(
                f"SELECT partition_key, version FROM partitions WHERE partition_key IN ({marks})", list(chunk)))
        return out

    def files(self, keys: Sequence[str]) -> list[dict]:
        """The files of these partitions (their records: ``records``)."""
        columns = "uri, size, version, partition_key, study_instance_uid, series_instance_uid, sop_instance_uid, reason"
        out = []
        for chunk in chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            cursor = self.conn.execute(f"SELECT {columns} FROM files WHERE partition_key IN ({marks}) ORDER BY uri",
                                       list(chunk))
            names = [d[0] for d in cursor.description]
            out.extend(dict(zip(names, row, strict=True)) for row in cursor)
        return out

    def records(self, uris: Sequence[str]) -> list[dict]:
        return [json.loads(r) for r in self.records_json(uris).values()]

    def records_json(self, uris: Sequence[str]) -> dict[str, str]:
        """uri → the record of that file, as JSON text (unpacked, not parsed)."""
        out: dict[str, str] = {}
        dictionary = self.dictionary
        for chunk in chunks(list(uris), 500):
            marks = ",".join("?" * len(chunk))
            out.update((uri, unpack(record, dictionary)) for uri, record in self.conn.execute(
                f"SELECT uri, record FROM files WHERE uri IN ({marks})", list(chunk)))
        return out

    def partitions_holding(self, sop_uids: Sequence[str]) -> dict[str, set[str]]:
        """SOP Instance UID → the partitions whose readable files hold it (for these UIDs)."""
        out: dict[str, set[str]] = {}
        for chunk in chunks(list(sop_uids), 500):
            marks = ",".join("?" * len(chunk))
            for uid, key in self.conn.execute(
                    f"SELECT DISTINCT sop_instance_uid, partition_key FROM files WHERE reason IS NULL "
                    f"AND sop_instance_uid IN ({marks})", list(chunk)):
                out.setdefault(uid, set()).add(key)
        return out

    def shared_sop_uids(self) -> list[str]:
        """Every SOP Instance UID that readable files of more than one partition hold (read from
        the covering index ``files_sop``, not from the rows)."""
        return [uid for (uid,) in self.conn.execute(
            "SELECT sop_instance_uid FROM files WHERE reason IS NULL GROUP BY sop_instance_uid "
            "HAVING count(DISTINCT partition_key) > 1 ORDER BY sop_instance_uid")]

    def keys_holding(self, accessions: Sequence[str]) -> dict[str, str]:
        """Accession number → partition key, for the accessions that have files here."""
        from quire_assets.dicom.records import partition_key

        wanted = {partition_key(a, None): a for a in accessions}
        present = set()
        for chunk in chunks(list(wanted), 500):
            marks = ",".join("?" * len(chunk))
            present.update(r[0] for r in self.conn.execute(
                f"SELECT DISTINCT partition_key FROM files WHERE partition_key IN ({marks})", list(chunk)))
        return {wanted[k]: k for k in present}

    def summary(self) -> dict[str, int]:
        """Files, what they make, and the files that are not: ``errors`` (DICOM, or meant to be, that
        cannot be read) apart from ``skipped`` (not DICOM by their name: ``.xml``, ``.csv``...)."""
        row = self.conn.execute(
            "SELECT count(*), sum(reason IS NOT NULL AND reason != 'skipped'), sum(reason = 'skipped'),"
            " count(DISTINCT sop_instance_uid) FILTER (WHERE reason IS NULL),"
            " count(DISTINCT series_instance_uid) FILTER (WHERE reason IS NULL),"
            " count(DISTINCT study_instance_uid) FILTER (WHERE reason IS NULL) FROM files"
        ).fetchone()
        return {"files": row[0], "errors": row[1] or 0, "skipped": row[2] or 0, "instances": row[3], "series": row[4],
                "studies": row[5]}

    def skipped_kinds(self, most: int = 6) -> list[str]:
        """The name endings of the skipped files (``.xml``, ``.csv``...), most frequent first."""
        kinds: Counter = Counter()
        for (uri,) in self.conn.execute("SELECT uri FROM files WHERE reason = 'skipped'"):
            name = uri.rsplit("/", 1)[-1]
            kinds[("." + name.rsplit(".", 1)[1].lower()) if "." in name.strip(".") else name] += 1
        return [kind for kind, _ in kinds.most_common(most)]

    # ---- what each catalog holds --------------------------------------------------------------

    def pending(self, catalog: str) -> list[str]:
        """Partitions whose current version this catalog does not hold yet (including emptied ones)."""
        rows = self.conn.execute(
            "SELECT p.partition_key FROM partitions p LEFT JOIN cataloged c "
            "ON c.catalog = ? AND c.partition_key = p.partition_key "
            "WHERE c.version IS NULL OR c.version < p.version ORDER BY p.seq",
            (catalog,),
        )
        return [r[0] for r in rows]

    def documents_per_partition(self) -> dict[str, dict[str, int]]:
        """Partition → the instances (distinct SOP Instance UIDs) and errors its files make."""
        rows = self.conn.execute(
            "SELECT partition_key, count(DISTINCT sop_instance_uid) FILTER (WHERE reason IS NULL), "
            "sum(reason IS NOT NULL) FROM files GROUP BY partition_key")
        return {key: {"instances": instances, "errors": errors or 0} for key, instances, errors in rows}

    def forget_cataloged(self, catalog: str, keys: Sequence[str]) -> None:
        """These partitions are pending for this catalog again (it does not hold what they make)."""
        with immediate(self.conn):
            self.conn.executemany("DELETE FROM cataloged WHERE catalog = ? AND partition_key = ?",
                                  [(catalog, k) for k in keys])

    def mark_cataloged(self, catalog: str, versions: dict[str, int]) -> None:
        with immediate(self.conn):
            self.conn.executemany(
                "INSERT INTO cataloged VALUES (?, ?, ?) ON CONFLICT(catalog, partition_key) "
                "DO UPDATE SET version = max(version, excluded.version)",
                [(catalog, k, v) for k, v in versions.items()],
            )
