"""Where DICOM files come from (a local folder, an S3 bucket) and the incremental index of them.

Dagster-free: ``resources/`` wraps these for Dagster, the CLI uses them directly.
"""

from __future__ import annotations

from quire_assets.sources.base import FileEntry, FileSource
from quire_assets.sources.index import RefreshResult, SourceIndex
from quire_assets.sources.registry import Credentials, source_from_uri

__all__ = ["Credentials", "FileEntry", "FileSource", "RefreshResult", "SourceIndex", "source_from_uri"]
