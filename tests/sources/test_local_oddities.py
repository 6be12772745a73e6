"""Odd names in a local archive: each is accounted for, none is opened that could block or loop,
and a name that is not UTF-8 keeps a URI that gives its bytes back."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest

from quire_assets.catalog import open_catalog
from quire_assets.sources import SourceIndex
from quire_assets.sources.local import LocalFiles, path_of
from tests.cli.test_ingest_e2e import QUIRE
from tests.conftest import PYDICOM_TEST_FILES

CT = PYDICOM_TEST_FILES / "CT_small.dcm"
MR = PYDICOM_TEST_FILES / "MR_small.dcm"
RT = PYDICOM_TEST_FILES / "rtplan.dcm"


@pytest.fixture
def odd_archive(tmp_path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "archive"
    (root / "folder").mkdir(parents=True)
    shutil.copy(CT, root / "plain.dcm")
    os.mkfifo(root / "pipe.dcm")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "socket.dcm"))
    os.symlink(root / "gone.dcm", root / "dangling.dcm")
    os.symlink(root / "loop-b", root / "loop-a")
    os.symlink(root / "loop-a", root / "loop-b")
    os.symlink(root / "folder", root / "folder-link")
    odd = os.path.join(os.fsencode(root), b"caf\xe9-latin1.dcm")  # not UTF-8
    shutil.copy(MR, odd)
    shutil.copy(RT, root / "two\nlines.dcm")
    yield root, {"odd": os.fsdecode(odd)}
    server.close()


def test_odd_names_are_recorded_and_never_opened(odd_archive, tmp_path, features):
    root, names = odd_archive
    with SourceIndex(LocalFiles(root), tmp_path / "home") as index:
        result = index.refresh(features, workers=1)
        files = {Path(path_of(f["uri"])).name: f for f in index.files(index.partition_keys())}
    assert result.listed == 9  # every name but the folder itself
    reasons = {name: f["reason"] for name, f in files.items()}
    assert reasons["plain.dcm"] is None and reasons["two\nlines.dcm"] is None
    assert reasons[Path(names["odd"]).name] is None
    for name in ("pipe.dcm", "socket.dcm", "folder-link"):
        assert reasons[name] == "skipped", name
    for name in ("dangling.dcm", "loop-a", "loop-b"):
        assert reasons[name] == "io_error", name


def test_quire_ingest_accounts_for_each_odd_name(odd_archive, tmp_path):
    root, names = odd_archive
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    for name in ("QUIRE_CATALOG", "DAGSTER_HOME"):
        env.pop(name, None)
    # A FIFO opened for reading would block until a writer comes: the timeout would say so.
    proc = subprocess.run([QUIRE, "ingest", str(root)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        errors = {Path(path_of(e["uri"])).name: e for e in catalog.find("errors")}
        instances = catalog.find("instances")
    assert errors["pipe.dcm"]["detail"] == "a named pipe (FIFO), not a regular file: not opened"
    assert errors["socket.dcm"]["detail"] == "a socket, not a regular file: not opened"
    assert errors["folder-link"]["detail"].startswith("a symbolic link to a folder")
    assert errors["dangling.dcm"]["detail"] == "No such file or directory (a symbolic link to nothing)"
    assert errors["loop-a"]["detail"] == "Too many levels of symbolic links (a symbolic link in a loop)"
    assert len(instances) == 3
    uris = {d["uri"] for d in instances}
    odd_uri = next(u for u in uris if u.startswith("file://"))
    assert os.fsencode(path_of(odd_uri)) == os.fsencode(names["odd"])  # lossless
    assert str(root / "two\nlines.dcm") in uris


def test_unreadable_files_and_folders_are_io_errors_then_read_once_readable(tmp_path):
    """A file and a subfolder this user may not read: recorded as ``io_error`` with the OS's
    message, the rest read; made readable (which changes no size or mtime), the next ingest
    catalogs them. Root reads everything, so as root the command runs without the capabilities
    that let it (``setpriv``)."""
    root = tmp_path / "archive"
    (root / "closed").mkdir(parents=True)
    shutil.copy(CT, root / "plain.dcm")
    shutil.copy(MR, root / "locked.dcm")
    shutil.copy(RT, root / "closed" / "inside.dcm")
    os.chmod(root / "locked.dcm", 0)
    os.chmod(root / "closed", 0)
    unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("QUIRE_CATALOG", None)
    try:
        first = subprocess.run([*unprivileged, QUIRE, "ingest", str(root)], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(root / "locked.dcm", 0o644)
        os.chmod(root / "closed", 0o755)
    assert first.returncode == 0, first.stderr[-2000:]
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        errors = {d["uri"]: (d["reason"], d["detail"]) for d in catalog.find("errors")}
        assert [d["uri"] for d in catalog.find("instances")] == [str(root / "plain.dcm")]
    assert errors[str(root / "locked.dcm")][0] == "io_error"
    assert "Permission denied" in errors[str(root / "locked.dcm")][1]
    assert errors[str(root / "closed")] == (
        "io_error", "Permission denied: a folder that cannot be listed (its files are not cataloged)")

    second = subprocess.run([QUIRE, "ingest", str(root)], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        assert catalog.count("errors") == 0
        assert sorted(d["uri"] for d in catalog.find("instances")) == sorted(
            str(p) for p in (root / "plain.dcm", root / "locked.dcm", root / "closed" / "inside.dcm"))


def test_a_file_rewritten_while_it_is_read_is_read_again_next_time(tmp_path, monkeypatch, features):
    """The scanner rewrites a file just as its header is read: that read is not cataloged (it
    may be half old, half new), and the next refresh reads the new file."""
    import quire_assets.sources.local as local

    root = tmp_path / "archive"
    root.mkdir()
    target = root / "image.dcm"
    shutil.copy(CT, target)
    read = local.read_file_prefix

    def rewritten_meanwhile(path):
        fetch = read(path)

        def fetch_then_rewrite(n: int) -> bytes:
            data = fetch(n)
            shutil.copy(MR, target)  # the new version lands right after the bytes were read
            return data

        return fetch_then_rewrite

    index = SourceIndex(LocalFiles(root), tmp_path / "home")
    monkeypatch.setattr(local, "read_file_prefix", rewritten_meanwhile)
    first = index.refresh(features, workers=1)
    monkeypatch.setattr(local, "read_file_prefix", read)
    [record] = index.records([str(target)])
    assert first.read == 1
    assert record["reason"] == "io_error" and record["detail"].startswith("the file changed while it was read")
    second = index.refresh(features, workers=1)
    [record] = index.records([str(target)])
    assert second.read == 1 and "reason" not in record
    assert record["sop_instance_uid"] == pydicom.dcmread(MR, stop_before_pixels=True).SOPInstanceUID
    assert index.refresh(features, workers=1).read == 0  # and then it is unchanged
