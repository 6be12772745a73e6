"""One registry of source URIs, for the command line and the Dagster resource alike."""

from __future__ import annotations

import importlib

import pytest

from quire_assets.settings import Settings
from quire_assets.sources import source_from_uri
from quire_assets.sources.base import SourceError
from quire_assets.sources.registry import KINDS, kind_of


def test_source_uris_name_their_kind():
    assert [kind_of(u) for u in ("s3://bucket/a", "dicomweb+https://pacs/dicom-web", "dicomweb+http://localhost/d",
                                 "dimse://PACS@host:104", "file:///data/archive", "/data/archive", "archive")] == [
        "s3", "dicomweb", "dicomweb", "dimse", "local", "local", "local"]
    # Every kind's module opens its own URIs: the registry's one line per kind is all it takes.
    assert set(KINDS) == {"s3", "dicomweb", "dimse", "local"}
    for _, module in KINDS.values():
        assert callable(importlib.import_module(module).open_source), module


def test_source_uris_open_one_way(tmp_path):
    s3 = source_from_uri("s3://bucket/a/b/")
    assert (s3.bucket, s3.prefix, s3.uri) == ("bucket", "a/b/", "s3://bucket/a/b/")
    assert (source_from_uri("s3://bucket").bucket, source_from_uri("s3://bucket").prefix) == ("bucket", "")
    assert source_from_uri(f"file://{tmp_path}").root == source_from_uri(str(tmp_path)).root == tmp_path.resolve()
    with pytest.raises(SourceError, match="needs a bucket"):
        source_from_uri("s3://")


def test_the_resource_and_the_core_read_a_uri_the_same_way(tmp_path):
    from quire_assets.definitions import source_resource

    for uri in ("s3://bucket/a/b", f"file://{tmp_path}", str(tmp_path), "dicomweb+https://pacs.example.org/dicom-web",
                "dimse://PACS@10.0.0.1:104?calling=QUIRE"):
        resource = source_resource(Settings.from_environ(), uri)
        assert type(resource).__name__ == "DicomSource"  # one resource, whatever the kind
        assert resource.files().uri == source_from_uri(uri).uri


def test_pacs_uris():
    web = source_from_uri("dicomweb+https://pacs.example.org/dicom-web")
    assert (web.base, web.uri) == ("https://pacs.example.org/dicom-web", "dicomweb+https://pacs.example.org/dicom-web")
    dimse = source_from_uri("dimse://PACS_AET@pacs.example.org:11112?calling=QUIRE_01")
    assert (dimse.host, dimse.port, dimse.called_aet, dimse.calling_aet) == (
        "pacs.example.org", 11112, "PACS_AET", "QUIRE_01")
    assert source_from_uri("dimse://PACS@10.0.0.1:104").calling_aet == "QUIRE"
    for bad in ("dimse://pacs.example.org:104", "dimse://PACS@pacs.example.org", "dimse://PACS@host:port",
                "dimse://PACS@host:104/studies"):
        with pytest.raises(SourceError, match="dimse://CALLED_AET@host:port"):
            source_from_uri(bad)
    with pytest.raises(SourceError, match="AE title"):
        source_from_uri("dimse://A_TITLE_LONGER_THAN_16@host:104")
    with pytest.raises(SourceError, match="not in the URL"):
        source_from_uri("dicomweb+https://me:secret@pacs.example.org/dicom-web")
    # The URI the index and the jobs know a source by.
    for uri in ("dicomweb+https://pacs.example.org/dicom-web", "dimse://PACS@10.0.0.1:104?calling=QUIRE"):
        assert source_from_uri(uri).uri == uri


def test_threads_reach_the_source():
    from quire_assets.sources import SourceOptions

    assert source_from_uri("s3://b/p", SourceOptions(threads=3)).threads == 3
    assert source_from_uri("s3://b/p").threads == 16
    assert source_from_uri("dimse://PACS@h:104", SourceOptions(threads=2)).threads == 2


def test_only_a_pacs_is_asked_for_accessions(tmp_path):
    from quire_assets.sources.base import Selection
    from quire_assets.sources.local import LocalFiles

    with pytest.raises(SourceError, match="only a PACS can be asked"):
        list(LocalFiles(tmp_path).listing(list, Selection(accessions=("A1",))))
    assert list(LocalFiles(tmp_path).listing(list, Selection())) == []
