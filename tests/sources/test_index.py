"""The source index: work done beside its readers."""

from __future__ import annotations

import json
import multiprocessing
import shutil

from quire_assets.dicom.features import load_feature_sets
from quire_assets.sources import SourceIndex, source_from_uri


def test_meanwhile_runs_once_while_the_reader_processes_work(sample_archive, tmp_path):
    index = SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path)
    seen = []
    # Called after the pool has forked its readers: a thread started here is never forked.
    result = index.refresh(load_feature_sets(), workers=2,
                           meanwhile=lambda: seen.append(len(multiprocessing.active_children())))
    assert seen == [2]
    assert result.read == result.listed == index.summary()["files"] > 64
    # Nothing to read: it is still called once, at once.
    seen.clear()
    assert index.refresh(load_feature_sets(), workers=2, meanwhile=lambda: seen.append("called")).read == 0
    assert seen == ["called"]


def test_records_are_kept_packed_and_read_back_as_the_core_made_them(sample_archive, tmp_path):
    from quire_assets.dicom.records import extract_file
    from quire_assets.sources.index import DICTIONARY

    features = load_feature_sets()
    sample_archive = shutil.copytree(sample_archive, tmp_path / "archive")  # one file is touched below
    with SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path) as index:
        index.refresh(features, workers=2)
        uris = [u for (u,) in index.conn.execute("SELECT uri FROM files ORDER BY uri")]
        stored = dict(index.conn.execute("SELECT uri, record FROM files"))
        texts = index.records_json(uris)
        dictionary = index.conn.execute("SELECT value FROM settings WHERE name = ?", (DICTIONARY,)).fetchone()[0]
    assert all(isinstance(v, bytes) for v in stored.values())
    # What the core makes of each file, unchanged by packing (the fast path's record, as the index reads).
    for uri in uris[:40]:
        assert json.loads(texts[uri]) == extract_file(uri, features)
    # The dictionary is a readable record: slices of one archive pack to a fraction of their text.
    assert "sop_instance_uid" in json.loads(dictionary)
    dicom = [u for u in uris if u.endswith(".dcm")]
    assert sum(len(stored[u]) for u in dicom) < 0.3 * sum(len(texts[u].encode()) for u in dicom)
    # The dictionary stays what it was: a second index object, a re-read of changed files.
    (sample_archive / "metadata.csv").touch()
    with SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path) as again:
        assert again.refresh(features, workers=1).read == 1
        assert again.conn.execute("SELECT value FROM settings").fetchall() == [(dictionary,)]
        assert again.records_json(uris) == texts


def test_an_index_with_records_kept_as_text_still_reads(sample_archive, tmp_path):
    features = load_feature_sets()
    with SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path) as index:
        index.refresh(features, workers=1)
        uris = [u for (u,) in index.conn.execute("SELECT uri FROM files")]
        texts = index.records_json(uris)
        # As an index written before records were packed holds them.
        index.conn.executemany("UPDATE files SET record = ? WHERE uri = ?", [(t, u) for u, t in texts.items()])
        index.conn.execute("DELETE FROM settings")
    with SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path) as old:
        assert old.records_json(uris) == texts


def test_an_index_opened_before_the_dictionary_was_chosen_reads_with_it(sample_archive, tmp_path):
    features = load_feature_sets()
    first = SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path)
    second = SourceIndex(source_from_uri(str(sample_archive)), home=tmp_path)  # as another process would
    with first, second:
        assert second.dictionary is None
        first.refresh(features, workers=1)  # chooses the dictionary and packs every record with it
        assert second.refresh(features, workers=1).read == 0
        assert second.dictionary == first.dictionary is not None
        uris = [u for (u,) in first.conn.execute("SELECT uri FROM files")]
        assert first.records_json(uris) == second.records_json(uris)
