"""A PACS over DIMSE (``dimse://CALLED_AET@host:port?calling=OUR_AET``), with ``pynetdicom``.

C-FIND (Study Root) walks studies → series → instances, with the PACS's instance counts. Headers
come through C-GET: the PACS sends each instance over the association Quire opened, the instance
is parsed in memory by the same code as a file's header, and nothing is written to disk. C-GET
always carries the pixel data (DIMSE has no metadata-only retrieve); DICOMweb reads far fewer
bytes where a PACS offers it.

Each (SOP class, transfer syntax) pair is proposed as its own presentation context, so the PACS
can send every instance in the transfer syntax it holds it in, without transcoding: the record's
TransferSyntaxUID is the one of the stored instance. An association carries at most 128 contexts,
so a series with many SOP classes is retrieved over several associations.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.records import error_record, extract, partition_key
from quire_assets.sources.base import FileEntry, Selection, SourceError
from quire_assets.sources.pacs import PacsSource, Series, Study, instance_path, safe_accession
from quire_assets.sources.registry import SourceOptions

TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, RLELossless,
)
MAX_CONTEXTS = 128
# SOP classes per C-GET association: their contexts plus the C-GET one fit in 128.
CLASSES_PER_ASSOCIATION = (MAX_CONTEXTS - 1) // len(TRANSFER_SYNTAXES)
PENDING = (0xFF00, 0xFF01)


class _NoDelayAE(AE):
    """pynetdicom sends a DIMSE message's command and data set as two writes; with Nagle's algorithm
    the second waits for the peer's delayed ACK (40 ms on Linux) on every C-FIND and C-GET. It has
    no socket-option setting, hence this override (measured on Orthanc: 95 → 55 ms a C-FIND)."""

    def _create_socket(self, assoc: Any, address: Any, tls_args: Any) -> Any:
        sock = super()._create_socket(assoc, address, tls_args)
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


DEFAULT_CALLING_AET = "QUIRE"


class DimseFiles(PacsSource):
    def __init__(self, host: str, port: int, called_aet: str, calling_aet: str = DEFAULT_CALLING_AET, threads: int = 4,
                 timeout: float = 30):
        for name, aet in (("called", called_aet), ("calling", calling_aet)):
            if not aet or len(aet) > 16 or "\\" in aet or not aet.isprintable():
                raise SourceError(f"the {name} AE title {aet!r} is not valid (1 to 16 printable characters)")
        self.host, self.port = host, int(port)
        self.called_aet, self.calling_aet = called_aet, calling_aet
        # The calling AE title is part of the source's name: a PACS may show each caller other studies.
        self.uri = f"dimse://{called_aet}@{host}:{port}?calling={calling_aet}"
        self.threads = threads
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.received = 0  # bytes of the instances C-GET brought (pixel data included)
        # SOP classes by (study, series), from the listing's image-level C-FIND: reading the series
        # then needs no second one.
        self._listed: dict[tuple[str, str], dict[str, str]] = {}

    # ---- associations -------------------------------------------------------------------------

    def _ae(self) -> AE:
        ae = _NoDelayAE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        return ae

    @contextmanager
    def _association(self, ae: AE, **kwargs: Any) -> Iterator[Any]:
        """An established association, released at the end; a clear SourceError when there is none."""
        rejections: list[str] = []

        def on_pdu(event: Any) -> None:
            # The reject PDU as the DUL thread decodes it: under load pynetdicom can close the socket
            # on it before the requesting thread has looked, and then reports an abort, not the
            # rejection (is_rejected stays False), so the reason is taken here.
            if isinstance(event.pdu, A_ASSOCIATE_RJ):
                rejections.append(event.pdu.reason_str)

        handlers = [*kwargs.pop("evt_handlers", []), (evt.EVT_PDU_RECV, on_pdu)]
        association = ae.associate(self.host, self.port, ae_title=self.called_aet, evt_handlers=handlers, **kwargs)
        if not association.is_established:
            raise SourceError(self._why_not(association, rejections))
        try:
            yield association
        finally:
            if association.is_established:
                association.release()

    def _why_not(self, association: Any, rejections: list[str]) -> str:
        if association.is_rejected or rejections:
            reason = rejections[0] if rejections else "no reason given"
            hint = {"Called AE title not recognised": f" (is {self.called_aet!r} the PACS's AE title?)",
                    "Calling AE title not recognised":
                        f" (the PACS does not know {self.calling_aet!r}: register it there, or use ?calling=)"}
            return f"{self.uri}: the PACS rejected the association: {reason}{hint.get(reason, '')}"
        try:  # no association and no rejection: find out whether anything listens there at all
            socket.create_connection((self.host, self.port), timeout=self.timeout).close()
        except OSError as exc:
            return f"{self.uri}: cannot connect to the PACS ({exc.strerror or type(exc).__name__})"
        return f"{self.uri}: the PACS aborted the association (no usable presentation context, or a timeout)"

    @contextmanager
    def _querying(self) -> Iterator[Any]:
        """This thread's C-FIND association, opened once and kept for the walk (one per reader thread)."""
        association = getattr(self._local, "find", None)
        if association is not None and association.is_established:
            yield association
            return
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        with self._association(ae) as association:
            self._local.find = association
            try:
                yield association
            finally:
                self._local.find = None

    def _find(self, identifier: Dataset) -> list[Dataset]:
        with self._querying() as association:
            answers = []
            for status, found in association.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
                code = getattr(status, "Status", None)
                if code is None:
                    raise SourceError(f"{self.uri}: the PACS stopped answering a C-FIND (connection lost or timeout)")
                if code in PENDING and found is not None:
                    answers.append(found)
                elif code not in PENDING and code != 0x0000:
                    raise SourceError(f"{self.uri}: C-FIND at {identifier.QueryRetrieveLevel} level failed "
                                      f"(status 0x{code:04X})")
            return answers

    # ---- the walk -----------------------------------------------------------------------------

    def listing(self, known: Callable[[], list[FileEntry]], selection: Selection | None = None) -> Iterator[FileEntry]:
        with self._querying():  # one association for the whole walk
            yield from super().listing(known, selection)

    def studies(self, selection: Selection) -> Iterator[Study]:
        seen: set[str] = set()
        for accession in selection.accessions or ("",):
            query = _query("STUDY", StudyInstanceUID="", NumberOfStudyRelatedInstances="",
                           AccessionNumber=safe_accession(accession) if accession else "")
            if selection.since:
                query.StudyDate = f"{selection.since}-"
            if selection.modality:
                query.ModalitiesInStudy = selection.modality
            for found in self._find(query):
                uid = str(found.get("StudyInstanceUID", ""))
                if uid and uid not in seen:
                    seen.add(uid)
                    yield Study(uid, _count(found, "NumberOfStudyRelatedInstances"))

    def series(self, study_uid: str) -> list[Series]:
        query = _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", NumberOfSeriesRelatedInstances="")
        return [Series(str(f.SeriesInstanceUID), _count(f, "NumberOfSeriesRelatedInstances"))
                for f in self._find(query) if f.get("SeriesInstanceUID")]

    def _sop_classes(self, study_uid: str, series_uid: str) -> dict[str, str]:
        query = _query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID="",
                       SOPClassUID="")
        return {str(f.SOPInstanceUID): str(f.get("SOPClassUID", "")) for f in self._find(query)
                if f.get("SOPInstanceUID")}

    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        classes = self._sop_classes(study_uid, series_uid)
        with self._lock:  # kept for read_series: the instances listed are the ones read next
            self._listed[study_uid, series_uid] = classes
        return list(classes)

    # ---- reading ------------------------------------------------------------------------------

    def read_series(self, study_uid: str, series_uid: str, entries: Sequence[FileEntry],
                    features: FeatureSets) -> list[dict]:
        with self._lock:
            classes = self._listed.pop((study_uid, series_uid), None)
        if classes is None or any(instance_path(e.uri)[2] not in classes for e in entries):
            classes = self._sop_classes(study_uid, series_uid)
        wanted = {instance_path(e.uri)[2]: e for e in entries}
        records: dict[str, dict] = {}

        def parse(sop: str, data: bytes) -> None:  # in memory, as a file's header is read
            records[sop] = extract(wanted[sop].uri, len(data), lambda n: data[:n], features, len(data))

        self._get(study_uid, series_uid, {sop: classes[sop] for sop in wanted if classes.get(sop)}, parse)
        out = []
        for entry in entries:
            sop = instance_path(entry.uri)[2]
            why = ("the PACS no longer lists this instance" if sop not in classes
                   else "the PACS did not say its SOP class" if not classes[sop] else "C-GET did not send it")
            out.append(records.get(sop) or error_record(entry.uri, "pacs_error", f"{self.uri}: {why}",
                                                        partition_key(None, study_uid)))
        return out

    def _get(self, study_uid: str, series_uid: str, classes: dict[str, str],
             on_instance: Callable[[str, bytes], None]) -> None:
        """C-GET of some instances of a series (SOP Instance UID → SOP class), over as few
        associations as the 128-context limit allows; ``on_instance(uid, bytes)`` as each arrives."""
        by_class: dict[str, list[str]] = {}
        for sop, sop_class in classes.items():
            by_class.setdefault(sop_class, []).append(sop)
        groups = list(by_class.items())
        for i in range(0, len(groups), CLASSES_PER_ASSOCIATION):
            part = groups[i : i + CLASSES_PER_ASSOCIATION]
            ae = self._ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
            for sop_class, _ in part:
                for syntax in TRANSFER_SYNTAXES:
                    ae.add_requested_context(sop_class, [syntax])
            roles = [build_role(sop_class, scp_role=True) for sop_class, _ in part]

            def on_store(event: Any) -> int:
                sop = str(event.request.AffectedSOPInstanceUID)
                if sop in classes:  # an instance not asked for is not kept
                    data = event.encoded_dataset(include_meta=True)
                    with self._lock:
                        self.received += len(data)
                    on_instance(sop, data)
                return 0x0000

            query = _query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)
            query.SOPInstanceUID = [sop for _, sops in part for sop in sops]
            with self._association(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]) as association:
                for status, _ in association.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                    if getattr(status, "Status", None) is None:
                        raise SourceError(f"{self.uri}: the PACS stopped answering a C-GET (connection lost or timeout)")

    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        """The whole instance, by C-GET (for one file; ``read_series`` reads a series at once)."""
        study, series, sop = instance_path(entry.uri)

        def fetch(n: int) -> bytes:
            received: list[bytes] = []
            self._get(study, series, {sop: self._sop_classes(study, series).get(sop, "")},
                      lambda _, data: received.append(data))
            if not received:
                raise OSError(f"{entry.uri}: C-GET did not send it")
            return received[0][:n]

        return fetch


def _query(level: str, **attributes: Any) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in attributes.items():
        setattr(query, keyword, value)
    return query


def _count(found: Dataset, keyword: str) -> int | None:
    try:
        return int(found.get(keyword))
    except (TypeError, ValueError):
        return None


def open_source(uri: str, options: SourceOptions) -> DimseFiles:
    """``dimse://CALLED_AET@host:port?calling=OUR_AET`` (calling AE title: QUIRE unless named)."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.username or not parts.hostname or not port or parts.path not in ("", "/"):
        raise SourceError(f"a DIMSE source is dimse://CALLED_AET@host:port?calling=OUR_AET, not {uri!r}")
    calling = parse_qs(parts.query).get("calling", [DEFAULT_CALLING_AET])[0]
    return DimseFiles(parts.hostname, port, unquote(parts.username), calling,
                      **({"threads": options.threads} if options.threads else {}))
