"""A real PACS on this machine: Debian's Orthanc with its DICOMweb plugin, started per test session
with a config file written here, loaded with the sample archive and pydicom's real test files.

Orthanc 1.10 has no bind-address setting: its HTTP and DICOM ports listen on every interface,
so the config makes both refuse anything that is not this machine (``RemoteAccessAllowed: false``
for HTTP; for DICOM, only the AE title QUIRE at 127.0.0.1 is a known modality, and nothing is
allowed to unknown callers). The tests only ever reach it through 127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
import pytest
import requests
from pydicom.misc import is_dicom

from quire_assets.dicom.sample import write_sample_archive
from tests.conftest import PYDICOM_TEST_FILES
from tests.s3.conftest import free_port, send_head

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "quire", "pacs-secret"
CALLED_AET, CALLING_AET = "QUIRE_PACS", "QUIRE"

# pydicom's test files the PACS is loaded with: each a valid instance with a SOP Instance UID of
# its own (pydicom ships copies of some images under one UID: a PACS keeps one, a folder all),
# in many transfer syntaxes (implicit, explicit and big-endian VR; JPEG baseline and extended;
# JPEG 2000 lossy and lossless) and modalities (CT, MR, RT plan, SR, SC, US, ECG waveform), one
# with a GB18030 character set. Left out because the PACS does not describe them as the file
# does, which a catalog made through it can only repeat: J2K_pixelrep_mismatch.dcm (Orthanc's
# DICOM JSON drops values of its Japanese character set), badVR.dcm (Orthanc's DICOM JSON leaves
# out its invalid NumberOfFrames '1A', which the file's record keeps as text with an oddity),
# SC_rgb_jpeg.dcm (Orthanc refuses the file). An instance the PACS cannot describe is an error
# record: tests/pacs/test_pacs_errors.py.
PYDICOM_FILES = (
    "693_J2KI.dcm", "CT_small.dcm", "ExplVR_BigEnd.dcm", "GDCMJ2K_TextGBR.dcm", "JPEG-lossy.dcm", "MR_small.dcm",
    "SC_jpeg_no_color_transform.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_small_odd.dcm",
    "examples_jpeg2k.dcm", "examples_overlay.dcm", "examples_palette.dcm", "examples_rgb_color.dcm",
    "examples_ybr_color.dcm", "liver_1frame.dcm", "reportsi.dcm", "rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm",
)


@dataclass
class Pacs:
    http_port: int
    dicom_port: int
    process: subprocess.Popen
    files: dict[str, Path]  # SOP Instance UID → the file loaded

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"dicomweb+{self.url}/dicom-web"

    def dimse(self, called: str = CALLED_AET, calling: str = CALLING_AET) -> str:
        return f"dimse://{called}@127.0.0.1:{self.dicom_port}?calling={calling}"

    def load(self, path: Path) -> str:
        response = requests.post(f"{self.url}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30)
        response.raise_for_status()
        return response.json()["ID"]

    def delete(self, orthanc_id: str) -> None:
        requests.delete(f"{self.url}/instances/{orthanc_id}", auth=(USER, PASSWORD), timeout=30).raise_for_status()


def start_orthanc(directory: Path, **settings: object) -> tuple[subprocess.Popen, int, int]:
    """Orthanc with the config below, and ``settings`` added to it."""
    directory = directory.resolve()  # Orthanc reads relative paths from its config file's folder
    if not Path(ORTHANC).exists():
        raise RuntimeError("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb (.ci/run does)")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "QuireTestPacs", "StorageDirectory": str(directory / "db"), "IndexDirectory": str(directory / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": CALLED_AET,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
        "DicomCheckCalledAet": True, "DicomCheckModalityHost": True,
        "DicomModalities": {"quire": [CALLING_AET, "127.0.0.1", 104]},
        "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False, "DicomAlwaysAllowStore": False,
        "Plugins": [DICOMWEB_PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpCompressionEnabled": False,  # the bytes a client receives are the bytes counted
    }
    config["DicomWeb"].update(settings.pop("DicomWeb", {}))
    config.update(settings)
    (directory / "orthanc.json").write_text(json.dumps(config))
    log = open(directory / "orthanc.log", "wb")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen([ORTHANC, str(directory / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{http_port}/system", auth=(USER, PASSWORD), timeout=2).ok:
                return process, http_port, dicom_port
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Orthanc did not start: {(directory / 'orthanc.log').read_text()[-2000:]}")
        time.sleep(0.1)


def write_pacs_archive(root: Path) -> Path:
    """What the PACS holds, as a folder: the sample archive (images of 256×256, so an instance is
    about 130 KB; a CT slice of 512×512 is 4 times that) and the pydicom files above."""
    write_sample_archive(root / "sample", patients=4, slices=6, matrix=256)
    for name in PYDICOM_FILES:
        shutil.copy(PYDICOM_TEST_FILES / name, root / name)
    return root


def dicom_files(root: Path) -> list[Path]:
    """The DICOM files of a folder (the sample archive also holds annotation XML and a CSV)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and is_dicom(p))


def loaded_pacs(directory: Path, archive: Path) -> Pacs:
    """An Orthanc holding the DICOM files of ``archive`` (the caller stops its process)."""
    process, http_port, dicom_port = start_orthanc(directory)
    server = Pacs(http_port, dicom_port, process, {})
    try:
        for path in dicom_files(archive):
            server.load(path)
            server.files[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    except BaseException:
        process.kill()
        raise
    return server


class CountingProxy(ThreadingHTTPServer):
    """In front of the PACS's HTTP port: counts requests and bytes by path, and answers 503 to the
    first ``fail_first`` requests."""

    daemon_threads = True

    def __init__(self, upstream_port: int):
        super().__init__(("127.0.0.1", free_port()), _ProxyHandler)
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.reset()

    def reset(self, fail_first: int = 0) -> None:
        with self.lock:
            self.fail_first = fail_first
            self.counter = itertools.count(1)
            self.requests: list[str] = []
            self.queries: list[str] = []  # each request's path with its query string
            self.bytes: Counter = Counter()
            self.failed = 0

    def url(self) -> str:
        return f"dicomweb+http://127.0.0.1:{self.server_address[1]}/dicom-web"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: CountingProxy = self.server
        with server.lock:
            n = next(server.counter)
            fail = n <= server.fail_first
            if fail:
                server.failed += 1
        if fail:
            send_head(self, 503, [], 4)
            self.wfile.write(b"busy")
            return
        upstream = http.client.HTTPConnection("127.0.0.1", server.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive", "host")}
        upstream.request("GET", self.path, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        with server.lock:
            server.requests.append(urlsplit(self.path).path)
            server.queries.append(self.path)
            server.bytes[urlsplit(self.path).path] += len(data)
        send_head(self, response.status, response.getheaders(), len(data))
        self.wfile.write(data)


@pytest.fixture
def counting_proxy(pacs):
    server = CountingProxy(pacs.http_port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
