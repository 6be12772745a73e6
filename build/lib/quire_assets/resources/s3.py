"""The S3 source as a Dagster resource, configured through dagster-aws's ``S3Resource``."""

from __future__ import annotations

from dagster_aws.s3 import S3Resource
from pydantic import Field

from quire_assets.resources.source import DicomSource
from quire_assets.sources import FileSource


class S3DicomSource(DicomSource):
    """``s3://bucket/prefix``. Connection settings (region, endpoint, credentials as ``EnvVar``s,
    retry attempts) live in the nested ``S3Resource``; with none given, the standard AWS chain
    and ``AWS_ENDPOINT_URL`` apply."""

    bucket: str = Field(description="The bucket")
    prefix: str = Field(default="", description="Only keys under this prefix")
    threads: int = Field(default=16, description="Concurrent ranged GETs")
    s3: S3Resource = Field(default_factory=S3Resource, description="dagster-aws S3 connection settings")

    def files(self) -> FileSource:
        from quire_assets.sources.s3 import S3Files, make_client

        s3 = self.s3

        def client():
            return make_client(
                self.threads, max_attempts=max(s3.max_attempts, 8), region_name=s3.region_name,
                endpoint_url=s3.endpoint_url, aws_access_key_id=s3.aws_access_key_id,
                aws_secret_access_key=s3.aws_secret_access_key, aws_session_token=s3.aws_session_token,
                profile_name=s3.profile_name)

        return S3Files(self.bucket, self.prefix, threads=self.threads, client_factory=client)
