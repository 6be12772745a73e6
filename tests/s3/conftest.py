"""A real S3-protocol server on 127.0.0.1 (moto's server mode), and a proxy in front of it that
counts the bytes each object sends and can inject faults (503 SlowDown, dropped connections,
bodies cut short, or an access-denied answer)."""

from __future__ import annotations

import http.client
import itertools
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code>'
          b"<Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Headers of the upstream's own framing, and those http.server writes itself.
HOP_HEADERS = {"transfer-encoding", "connection", "content-length", "server", "date"}


def send_head(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], length: int) -> None:
    """A proxy's status line and headers for a body of ``length`` bytes (the upstream's headers,
    less its framing); the caller writes the body."""
    handler.send_response(status)
    for k, v in headers:
        if k.lower() not in HOP_HEADERS:
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port: int):
        super().__init__(("127.0.0.1", free_port()), ProxyHandler)
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.reset()

    def reset(self, slow_down_every: int = 0, drop_every: int = 0, cut_every: int = 0, deny: bool = False):
        with self.lock:
            self.faults = {"slow_down": slow_down_every, "drop": drop_every, "cut": cut_every}
            self.deny = deny
            self.counter = itertools.count(1)
            self.bytes_by_key: Counter = Counter()
            self.gets_by_key: Counter = Counter()
            self.injected: Counter = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _error(self, status: int, body: bytes) -> None:
        """An S3 error answer (XML body), as the real service sends it."""
        send_head(self, status, [("Content-Type", "application/xml")], len(body))
        self.wfile.write(body)

    def _forward(self) -> None:
        server: Proxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = urlsplit(self.path).path
        is_object_get = self.command == "GET" and path.count("/") >= 2 and "list-type" not in self.path
        with server.lock:
            n = next(server.counter)
            faults, deny = dict(server.faults), server.deny
        if deny:
            self._error(403, DENIED)
            return
        if self.command == "GET":
            if faults["slow_down"] and n % faults["slow_down"] == 0:
                server.injected["slow_down"] += 1
                self._error(503, SLOW_DOWN)
                return
            if faults["drop"] and n % faults["drop"] == 0:
                server.injected["drop"] += 1
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        upstream = http.client.HTTPConnection("127.0.0.1", server.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        cut = (is_object_get and faults["cut"] and n % faults["cut"] == 0 and len(data) > 16)
        if is_object_get and response.status in (200, 206):
            key = unquote(path.split("/", 2)[2])
            with server.lock:
                server.bytes_by_key[key] += len(data)
                server.gets_by_key[key] += 1
        send_head(self, response.status, response.getheaders(), len(data))
        if self.command != "HEAD":
            if cut:
                server.injected["cut"] += 1
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="session")
def moto_server():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def proxy(moto_server):
    server = Proxy(int(moto_server.rsplit(":", 1)[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def aws_env(monkeypatch, proxy):
    """Fake credentials, and every S3 request through the counting proxy."""
    proxy.reset()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": proxy.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    return env


@pytest.fixture
def s3(moto_server, aws_env):
    """A client straight to moto (for setting up buckets, not through the proxy)."""
    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


def upload_tree(client, bucket: str, root: Path, prefix: str) -> dict[str, Path]:
    uploaded = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = f"{prefix}{path.relative_to(root).as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            uploaded[key] = path
    return uploaded
