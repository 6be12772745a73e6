"""One parser of source URIs, for the command line and the Dagster resources alike."""

from __future__ import annotations

from quire_assets.sources.base import SourceLocation, parse_source_uri


def test_source_uris_parse_one_way():
    assert parse_source_uri("s3://bucket/a/b/") == SourceLocation("s3", bucket="bucket", prefix="a/b/")
    assert parse_source_uri("s3://bucket") == SourceLocation("s3", bucket="bucket", prefix="")
    assert parse_source_uri("file:///data/archive") == SourceLocation("local", root="/data/archive")
    assert parse_source_uri("/data/archive") == SourceLocation("local", root="/data/archive")


def test_the_resources_and_the_core_read_a_uri_the_same_way(tmp_path):
    from quire_assets.definitions import source_resource
    from quire_assets.sources import source_from_uri

    resource, files = source_resource("s3://bucket/a/b"), source_from_uri("s3://bucket/a/b")
    assert (resource.bucket, resource.prefix) == (files.bucket, files.prefix) == ("bucket", "a/b")
    assert source_resource(f"file://{tmp_path}").root == str(tmp_path) == str(source_from_uri(f"file://{tmp_path}").root)
