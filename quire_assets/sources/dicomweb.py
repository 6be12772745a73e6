"""A PACS over DICOMweb: QIDO-RS to find studies, series and instances, WADO-RS *metadata* (DICOM
JSON) to read headers. Pixel data is never asked for: bulk-data URIs in the metadata are not
followed.

The HTTP client is ``dicomweb-client`` over a ``requests`` session per reader thread (so at most
``threads`` requests are in flight). The client retries answers 408/429/500/502/503/504, refused
connections and timeouts, with exponential backoff (0.5, 1, 2, 4 s by default). What still fails
while listing, or a PACS that stops answering, ends the work with one line naming the PACS and
the cause; an instance the PACS cannot describe becomes an error record.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from requests.adapters import HTTPAdapter

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.records import error_record, partition_key, record_or_error
from quire_assets.sources.base import FileEntry, Selection, SourceError
from quire_assets.sources.pacs import PacsSource, Series, Study, instance_path, safe_accession
from quire_assets.sources.registry import SourceOptions

PAGE = 500  # QIDO results asked for per request
RETRIED_STATUSES = (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.INTERNAL_SERVER_ERROR,
                    HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT)
CREDENTIALS_HINT = "set QUIRE_PACS_USER and QUIRE_PACS_PASSWORD, or QUIRE_PACS_TOKEN"
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _no_bulk_data(tag: str, vr: str, uri: str) -> None:
    """Bulk data (pixels, large private blobs) stays on the PACS: its URI is never followed."""
    return None


def describe_http_error(uri: str, exc: Exception) -> str:
    """One line naming the PACS and what went wrong."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            return f"{uri}: the PACS refused the credentials (HTTP {status}): {CREDENTIALS_HINT}"
        if status == 404:
            return f"{uri}: no DICOMweb service answers at this URL (HTTP 404)"
        return f"{uri}: the PACS answered HTTP {status} {exc.response.reason or ''}".rstrip()
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{uri}: TLS verification failed (give the PACS's CA certificate with QUIRE_PACS_CA_BUNDLE)"
    if isinstance(exc, requests.Timeout):
        return f"{uri}: the PACS did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        cause = _ERRNO.search(str(exc))
        return f"{uri}: cannot connect to the PACS ({cause.group(1).strip() if cause else type(exc).__name__})"
    return f"{uri}: {type(exc).__name__}: {exc}"[:300]


class DicomWebFiles(PacsSource):
    """``dicomweb+https://host/dicom-web`` (``dicomweb+http://`` too, for a PACS on this machine)."""

    def __init__(self, url: str, username: str = "", password: str = "", token: str = "", ca_bundle: str = "",
                 threads: int = 8, timeout: float = 60, attempts: int = 5, backoff_ms: int = 250):
        if not url.startswith(("http://", "https://")):
            raise SourceError(f"a DICOMweb source is dicomweb+https://host/path, not {url!r}")
        if "@" in url.split("/")[2]:
            raise SourceError(f"put the PACS credentials in the environment, not in the URL: {CREDENTIALS_HINT}")
        self.base = url.rstrip("/")
        self.uri = f"dicomweb+{self.base}"
        self.threads = threads
        self._settings = (username, password, token, ca_bundle, timeout, attempts, backoff_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.requests = 0
        self.received = 0  # response bytes (decoded), counted for every request this source makes

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.requests += 1
            self.received += len(response.content)

    @property
    def client(self) -> DICOMwebClient:
        """This thread's client (a ``requests`` session is not shared between threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            username, password, token, ca_bundle, timeout, attempts, backoff_ms = self._settings
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.verify = ca_bundle or True  # TLS verification is never turned off
            if token:
                session.headers["Authorization"] = f"Bearer {token}"
            elif username:
                session.auth = (username, password)
            session.hooks["response"].append(self._count)
            client = DICOMwebClient(self.base, session=session, timeout=timeout)
            client.set_http_retry_params(max_attempts=attempts, wait_exponential_multiplier=backoff_ms,
                                         retriable_error_codes=RETRIED_STATUSES)
            self._local.client = client
        return client

    @contextmanager
    def _asking(self) -> Iterator[None]:
        try:
            yield
        except (requests.RequestException, OSError) as exc:
            raise SourceError(describe_http_error(self.uri, exc)) from exc

    def _paged(self, search: Callable[..., list[dict]], *args: str, **kwargs: Any) -> Iterator[dict]:
        """Every result of a QIDO search, a page at a time (a server may return fewer than asked)."""
        offset = 0
        while True:
            with self._asking():
                page = search(*args, offset=offset, limit=PAGE, **kwargs)
            yield from page
            if not page:
                return
            offset += len(page)

    def studies(self, selection: Selection) -> Iterator[Study]:
        fields = ["NumberOfStudyRelatedInstances"]
        common: dict[str, str] = {}
        if selection.since:
            common["StudyDate"] = f"{selection.since}-"
        if selection.modality:
            common["ModalitiesInStudy"] = selection.modality
        if not selection.accessions:
            for row in self._paged(self.client.search_for_studies, fields=fields, search_filters=common):
                yield _study(row)
            return
        seen: set[str] = set()
        for accession in selection.accessions:
            filters = {**common, "AccessionNumber": safe_accession(accession)}
            with self._asking():  # an accession names a handful of studies: one request, no paging
                rows = self.client.search_for_studies(fields=fields, search_filters=filters)
            for row in rows:
                study = _study(row)
                if study.uid not in seen:
                    seen.add(study.uid)
                    yield study

    def series(self, study_uid: str) -> list[Series]:
        rows = self._paged(self.client.search_for_series, study_uid, fields=["NumberOfSeriesRelatedInstances"])
        return [Series(_first(row, "0020000E"), _int(row, "00201209")) for row in rows]

    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        return [_first(row, "00080018") for row in self._paged(self.client.search_for_instances, study_uid, series_uid)]

    def read_series(self, study_uid: str, series_uid: str, entries: Sequence[FileEntry],
                    features: FeatureSets) -> list[dict]:
        """One WADO-RS series metadata request; an instance missing from it is asked for alone."""
        with self._asking():
            try:
                described = {_first(m, "00080018"): m
                             for m in self.client.retrieve_series_metadata(study_uid, series_uid)}
            except requests.HTTPError as exc:
                if _refused(exc):
                    raise
                described = {}  # the series as a whole could not be described: ask instance by instance
        records = []
        for entry in entries:
            sop_uid = instance_path(entry.uri)[2]
            metadata = described.get(sop_uid)
            if metadata is None:
                with self._asking():
                    try:
                        [metadata] = self.client.retrieve_instance_metadata(study_uid, series_uid, sop_uid)
                    except (requests.HTTPError, ValueError) as exc:
                        if _refused(exc):
                            raise
                        records.append(error_record(entry.uri, "pacs_error", describe_http_error(self.uri, exc),
                                                    partition_key(None, study_uid)))
                        continue
            try:
                with warnings.catch_warnings():  # values that violate their VR: the record's oddities say it
                    warnings.simplefilter("ignore")
                    dataset = Dataset.from_json(metadata, bulk_data_uri_handler=_no_bulk_data)
            except Exception as exc:  # DICOM JSON the PACS got wrong: this instance is an error, the rest go on
                records.append(error_record(entry.uri, "unreadable", f"DICOM JSON: {type(exc).__name__}: {exc}"[:300],
                                            partition_key(None, study_uid)))
                continue
            records.append(record_or_error(entry.uri, dataset, features, True, None))
        return records

    def instance_uri(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"

    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        """The whole instance through WADO-RS (what a tool that retrieves images does; Quire's own
        reads use ``read_series``)."""
        study, series, sop = instance_path(entry.uri)

        def fetch(n: int) -> bytes:
            from pydicom import dcmwrite
            from pydicom.filebase import DicomBytesIO

            with self._asking():
                dataset = self.client.retrieve_instance(study, series, sop)
            buffer = DicomBytesIO()
            dcmwrite(buffer, dataset, enforce_file_format=True)
            return buffer.getvalue()[:n]

        return fetch


def _refused(exc: Exception) -> bool:
    """Credentials refused: the whole PACS is out of reach, not this one series."""
    response = getattr(exc, "response", None)
    return response is not None and response.status_code in (401, 403)


def _first(row: dict, tag: str) -> str:
    return str((row.get(tag, {}).get("Value") or [""])[0])


def _int(row: dict, tag: str) -> int | None:
    try:
        return int((row.get(tag, {}).get("Value") or [None])[0])
    except (TypeError, ValueError):
        return None


def _study(row: dict) -> Study:
    return Study(_first(row, "0020000D"), _int(row, "00201208"))


def open_source(uri: str, options: SourceOptions) -> DicomWebFiles:
    """``dicomweb+https://host/path`` (``dicomweb+http://`` for a PACS on this machine)."""
    o = options
    return DicomWebFiles(uri.removeprefix("dicomweb+"), o.username, o.password, o.token, o.ca_bundle,
                         **({"threads": o.threads} if o.threads else {}))
