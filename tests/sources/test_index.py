"""The source index: work done beside its readers."""

from __future__ import annotations

import multiprocessing

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
