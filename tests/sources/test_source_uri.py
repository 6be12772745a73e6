"""One parser of source URIs, for the command line and the Dagster resources alike."""

from __future__ import annotations

from quire_assets.settings import Settings
from quire_assets.sources.registry import SourceLocation, parse_source_uri


def test_source_uris_parse_one_way():
    assert parse_source_uri("s3://bucket/a/b/") == SourceLocation("s3", bucket="bucket", prefix="a/b/")
    assert parse_source_uri("s3://bucket") == SourceLocation("s3", bucket="bucket", prefix="")
    assert parse_source_uri("file:///data/archive") == SourceLocation("local", root="/data/archive")
    assert parse_source_uri("/data/archive") == SourceLocation("local", root="/data/archive")


def test_the_resources_and_the_core_read_a_uri_the_same_way(tmp_path):
    from quire_assets.definitions import source_resource
    from quire_assets.sources import source_from_uri

    resource, files = source_resource(Settings.from_environ(), "s3://bucket/a/b"), source_from_uri("s3://bucket/a/b")
    assert (resource.bucket, resource.prefix) == (files.bucket, files.prefix) == ("bucket", "a/b")
    assert source_resource(Settings.from_environ(), f"file://{tmp_path}").root == str(tmp_path) == str(source_from_uri(f"file://{tmp_path}").root)


def test_pacs_uris():
    import pytest

    from quire_assets.definitions import source_resource
    from quire_assets.sources import source_from_uri
    from quire_assets.sources.base import SourceError

    assert parse_source_uri("dicomweb+https://pacs.example.org/dicom-web") == SourceLocation(
        "dicomweb", url="https://pacs.example.org/dicom-web")
    assert parse_source_uri("dimse://PACS_AET@pacs.example.org:11112?calling=QUIRE_01") == SourceLocation(
        "dimse", host="pacs.example.org", port=11112, called_aet="PACS_AET", calling_aet="QUIRE_01")
    assert parse_source_uri("dimse://PACS@10.0.0.1:104").calling_aet == "QUIRE"
    for bad in ("dimse://pacs.example.org:104", "dimse://PACS@pacs.example.org", "dimse://PACS@host:port",
                "dimse://PACS@host:104/studies"):
        with pytest.raises(SourceError, match="dimse://CALLED_AET@host:port"):
            parse_source_uri(bad)
    with pytest.raises(SourceError, match="AE title"):
        source_from_uri("dimse://A_TITLE_LONGER_THAN_16@host:104")
    with pytest.raises(SourceError, match="not in the URL"):
        source_from_uri("dicomweb+https://me:secret@pacs.example.org/dicom-web")
    # The URI the index and the jobs know a source by, whether the CLI or a Dagster resource made it.
    for uri in ("dicomweb+https://pacs.example.org/dicom-web", "dimse://PACS@10.0.0.1:104?calling=QUIRE"):
        assert source_from_uri(uri).uri == source_resource(Settings.from_environ(), uri).files().uri == uri


def test_only_a_pacs_is_asked_for_accessions(tmp_path):
    import pytest

    from quire_assets.sources.base import Selection, SourceError
    from quire_assets.sources.local import LocalFiles

    with pytest.raises(SourceError, match="only a PACS can be asked"):
        list(LocalFiles(tmp_path).listing(list, Selection(accessions=("A1",))))
    assert list(LocalFiles(tmp_path).listing(list, Selection())) == []
