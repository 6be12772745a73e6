"""An S3 bucket and prefix as a DICOM source: paginated listing, header-only ranged GETs.

Credentials come from the usual AWS chain (environment, profile, instance role), for the command
line and the Dagster resource alike; they are never logged. ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3`` point it at MinIO or any S3-compatible store (botocore reads them).
Throttling (503 SlowDown), 5xx answers, timeouts and dropped connections are retried by
botocore's ``standard`` retry mode with backoff; a read that still fails becomes an error record
for that object, while a bucket that cannot be listed at all stops with one clear message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import ProtocolError

from quire_assets.sources.base import FileEntry, FileSource, SourceError
from quire_assets.sources.registry import SourceOptions

DEFAULT_THREADS = 16
DEFAULT_ATTEMPTS = 8
BODY_ATTEMPTS = 4

_LIST_ERRORS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied (check the credentials' permissions: s3:ListBucket, s3:GetObject)",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidAccessKeyId": "the AWS access key id is not valid",
    "SignatureDoesNotMatch": "the AWS secret access key does not match the key id",
    "ExpiredToken": "the AWS session token has expired",
    "InvalidToken": "the AWS session token is not valid",
    "PermanentRedirect": "the bucket is in another region (set AWS_DEFAULT_REGION)",
}


def make_client(threads: int = DEFAULT_THREADS, max_attempts: int = DEFAULT_ATTEMPTS, **session: Any):
    """A thread-safe S3 client sized for ``threads`` concurrent reads, with botocore retries."""
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max(threads, 10),
        connect_timeout=10,
        read_timeout=60,
    )
    options = {k: v for k, v in session.items() if v}
    profile = options.pop("profile_name", None)
    return boto3.session.Session(profile_name=profile).client("s3", config=config, **options)


def describe_error(bucket: str, exc: Exception) -> str:
    if isinstance(exc, NoCredentialsError):
        return f"s3://{bucket}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        cause = _LIST_ERRORS.get(code) or (f"{code} (HTTP {status})" if code else f"HTTP {status}")
        if code in ("404", "NotFound"):
            cause = _LIST_ERRORS["NoSuchBucket"]
        if code in ("403", "Forbidden"):
            cause = _LIST_ERRORS["AccessDenied"]
        return f"s3://{bucket}: {cause}"
    return f"s3://{bucket}: {type(exc).__name__}: {exc}"


class S3Files(FileSource):
    parallelism = "threads"
    first_bytes = 64 * 1024

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, threads: int = DEFAULT_THREADS,
                 client_factory: Callable[[], Any] | None = None):
        if not bucket:
            raise SourceError("an S3 source needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"
        self.threads = threads
        self._factory = client_factory or (lambda: make_client(threads))
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:  # one client, created lazily, shared by the reader threads (boto3 clients are thread-safe)
            if self._client is None:
                self._client = self._factory()
            return self._client

    def list(self) -> Iterator[FileEntry]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/") and obj["Size"] == 0:
                        continue  # a "folder" placeholder, not a file
                    yield self.entry(obj)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(describe_error(self.bucket, exc)) from exc

    def entry(self, obj: dict) -> FileEntry:
        """A listing row (``list_objects_v2`` or ``get_objects``) as a file entry."""
        return FileEntry(f"s3://{self.bucket}/{obj['Key']}", int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))

    def key_of(self, uri: str) -> str:
        return uri.removeprefix(f"s3://{self.bucket}/")

    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        key = self.key_of(entry.uri)

        def fetch(n: int) -> bytes:
            for attempt in range(BODY_ATTEMPTS):
                try:
                    response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{max(n, 1) - 1}")
                    return response["Body"].read()
                except ClientError as exc:
                    # botocore already retried what can be retried: this object becomes an error record.
                    raise OSError(f"S3 GET of {entry.uri} failed: {describe_error(self.bucket, exc)}") from exc
                except (BotoCoreError, ProtocolError, OSError) as exc:
                    # A connection dropped while the body streamed: botocore does not retry that part.
                    if attempt == BODY_ATTEMPTS - 1:
                        raise OSError(f"S3 GET of {entry.uri} failed: {type(exc).__name__}: {exc}") from exc
                    time.sleep(0.1 * 2**attempt)
            raise AssertionError("unreachable")

        return fetch


def open_source(uri: str, options: SourceOptions) -> S3Files:
    """``s3://bucket/prefix``; the connection comes from the AWS chain (``AWS_ENDPOINT_URL`` too)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return S3Files(bucket, prefix, threads=options.threads or DEFAULT_THREADS)
