"""WADO-RS reads each instance from where the catalog found it: a bucket (ranged GETs through
boto3, moto's S3 server here) and a PACS (WADO-RS of the real Orthanc, with the PACS credentials
of the service's settings). Quire serves the same file the source holds."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pydicom

from tests.api.conftest import Server, add_researcher
from tests.cli.test_ingest_e2e import quire
from tests.pacs.conftest import PASSWORD, USER
from tests.s3.conftest import upload_tree

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _served(source: str, home: Path, **extra: str):
    env = {**os.environ, "QUIRE_HOME": str(home), "QUIRE_PHI_SALT": "x", **extra}
    for name in ("QUIRE_CATALOG", "QUIRE_SOURCE"):
        env.pop(name, None)
    quire("ingest", source, env=env, cwd=home.parent)
    key = add_researcher(env, home, "boss", "--admin")
    return Server(env, home), key


def _retrieve_all(server: Server, key: str) -> dict[str, bytes]:
    """Every instance the catalog serves: SOP Instance UID → the bytes of its multipart part."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    client = DICOMwebClient(f"{server.url}/dicomweb", session=session)
    found = {}
    for answer in client.search_for_instances():
        study, series, sop = (answer[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018"))
        found[sop] = session.get(f"{server.url}/dicomweb/studies/{study}/series/{series}/instances/{sop}").content
        assert client.retrieve_instance_metadata(study, series, sop)["00080018"]["Value"] == [sop]
    return found


def test_instances_come_from_the_bucket(moto_server, pacs_archive, tmp_path):
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
    client.create_bucket(Bucket="wado-archive")
    # One study of the sample (its CT slices of 256×256): enough to read through ranged GETs.
    study = next(p for p in sorted((pacs_archive / "sample").rglob("*.dcm"))).parents[1]
    uploaded = upload_tree(client, "wado-archive", study, "ct/")
    server, key = _served("s3://wado-archive/ct/", tmp_path / "home", AWS_ENDPOINT_URL=moto_server, **AWS)
    try:
        served = _retrieve_all(server, key)
    finally:
        server.stop()
    files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
             for k, p in uploaded.items() if k.endswith(".dcm")}
    assert served.keys() == files.keys() and len(files) >= 6
    for sop, body in served.items():
        assert files[sop].read_bytes() in body


def test_instances_come_from_the_pacs(pacs, tmp_path):
    server, key = _served(pacs.dicomweb, tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    try:
        served = _retrieve_all(server, key)
    finally:
        server.stop()
    assert served.keys() == pacs.files.keys()
    for sop, body in served.items():
        ours = pydicom.dcmread(pydicom.filebase.DicomBytesIO(body[body.index(b"\r\n\r\n") + 4:]), force=True)
        original = pydicom.dcmread(pacs.files[sop])
        assert ours.SOPInstanceUID == sop and ours.get("PixelData") == original.get("PixelData")
