"""Where DICOM files come from (a local folder, an S3 bucket, a PACS) and the incremental index of them.

Dagster-free: ``resources/`` wraps these for Dagster, the CLI uses them directly.
"""

from __future__ import annotations

from quire_assets.sources.base import FileEntry, FileSource
from quire_assets.sources.index import RefreshResult, SourceIndex
from quire_assets.sources.registry import SourceOptions, source_from_uri

__all__ = ["FileEntry", "FileSource", "RefreshResult", "SourceIndex", "SourceOptions", "source_from_uri"]
