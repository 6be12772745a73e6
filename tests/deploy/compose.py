"""``docker-compose.yml`` resolved as compose resolves it, for machines without a Docker engine.

What compose does before it starts a container, done here by the rules of the Compose
specification: variables interpolated from the operator's environment (``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``$$``), YAML anchors and merge keys,
volumes split into named volumes and bind mounts (relative to the project folder), secrets as files
under ``/run/secrets``. A ``Container`` then plays one service as a local process: its own root
folder stands for the image's file system (the ``COPY`` lines of the Dockerfile that bring
``deploy/`` files), each mount is a symbolic link in that root to the volume's folder, container
paths in the environment and the command are moved under the root, and service names and ports
become 127.0.0.1 and free local ports.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.s3.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>.*))?", re.S)


class ComposeError(ValueError):
    """What ``docker compose`` would refuse: a required variable unset."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        parts = BRACED.fullmatch(match.group("braced"))
        if parts is None:
            raise ComposeError(f"invalid interpolation ${{{match.group('braced')}}}")
        name, op, arg = parts.group("name", "op", "arg")
        present = env.get(name)
        empty = present is None or (present == "" and op and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else present
        if op in (":?", "?") and empty:
            raise ComposeError(f"required variable {name} is missing a value: {arg}")
        return present or ""

    return VARIABLE.sub(one, value)


def _interpolated(node, env: Mapping[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    return node


@dataclass
class Mount:
    source: str  # a named volume, or an absolute host path (a bind mount)
    target: str
    named: bool
    read_only: bool


@dataclass
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    mounts: list[Mount]
    secrets: list[str]
    healthcheck: list[str] | None
    depends_on: dict[str, str]
    raw: dict = field(repr=False)


def load(project: Path, env: Mapping[str, str], compose_file: Path = ROOT / "docker-compose.yml",
         ) -> tuple[dict[str, Service], dict[str, Path]]:
    """The services of ``compose_file`` as compose resolves them with the operator's ``env`` and
    the project folder ``project`` (where relative paths point), and the secrets' files."""
    document = _interpolated(yaml.safe_load(compose_file.read_text()), env)
    services = {}
    for name, spec in document["services"].items():
        mounts = []
        for volume in spec.get("volumes", []):
            source, target, *mode = volume.split(":")
            named = not source.startswith((".", "/", "~"))
            if not named:
                source = str((project / source).resolve())
            mounts.append(Mount(source, target, named, mode == ["ro"]))
        health = spec.get("healthcheck", {}).get("test")
        depends = spec.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        services[name] = Service(
            name, list(spec.get("command") or []), {k: str(v) for k, v in (spec.get("environment") or {}).items()},
            mounts, list(spec.get("secrets", [])), health,
            {d: c.get("condition", "service_started") for d, c in depends.items()}, spec)
    secrets = {name: (project / s["file"]).resolve() for name, s in (document.get("secrets") or {}).items()}
    return services, secrets


def image_files(dockerfile: Path = ROOT / "Dockerfile") -> tuple[dict[str, str], list[tuple[Path, str]]]:
    """The image's ``ENV`` and the ``deploy/`` files its ``COPY`` lines place (host file, path)."""
    env: dict[str, str] = {}
    copies = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["ENV"]:
            key, _, value = words[1].partition("=")
            env[key] = value
        elif words[:1] == ["COPY"] and words[1].startswith("deploy/"):
            copies.append((ROOT / words[1], re.sub(r"\$(\w+)", lambda m: env[m.group(1)], words[2])))
    return env, copies


class Network:
    """Service names and their container ports, as 127.0.0.1 and a local port each."""

    def __init__(self, ports: Mapping[str, int]):
        self.ports = {name: (port, free_port()) for name, port in ports.items()}

    def local(self, name: str) -> int:
        return self.ports[name][1]

    def localize(self, value: str, own: str | None = None, hosts: bool = True) -> str:
        """``value`` with service names and ports made local; a value that is a service name
        alone is a host name where ``hosts`` (an environment variable, not a program's name)."""
        for name, (port, local) in self.ports.items():
            value = value.replace(f"{name}:{port}", f"127.0.0.1:{local}")
            if name == own:  # the service's own healthcheck reaches it on its container port
                value = re.sub(rf"(127\.0\.0\.1|localhost):{port}\b", f"127.0.0.1:{local}", value)
            if hosts and value == name:
                return "127.0.0.1"
            if value == str(port):
                return str(local)
        return value.replace("0.0.0.0", "127.0.0.1")


class Container:
    """One service as a local process, in a root folder standing for its container."""

    def __init__(self, service: Service, top: Path, network: Network, volumes: Mapping[str, Path],
                 secrets: Mapping[str, Path], environment: Mapping[str, str]):
        self.service, self.network = service, network
        self.root = top / "containers" / service.name
        image_env, copies = image_files()
        for source, target in copies:
            self.path(target).parent.mkdir(parents=True, exist_ok=True)
            text = source.read_text()
            if source.suffix == ".yaml":  # the workspace names the code server by its service name
                text = yaml.safe_dump(_localized(yaml.safe_load(text), network))
            self.path(target).write_text(text)
        links = [(m.target, volumes[m.source] if m.named else Path(m.source)) for m in service.mounts]
        links += [(f"/run/secrets/{name}", secrets[name]) for name in service.secrets]
        for target, source in links:
            link = self.path(target)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
        # What docker sets besides the image's and the file's variables; the image's programs are
        # this virtualenv's.
        self.env = {**{k: self._local(v) for k, v in {**image_env, **environment}.items()},
                    "HOSTNAME": socket.gethostname(), "HOME": str(self.root), "LANG": "C.UTF-8",
                    "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        self.process: subprocess.Popen | None = None
        self.log = top / f"{service.name}.log"

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def _local(self, value: str, hosts: bool = True) -> str:
        value = self.network.localize(value, self.service.name, hosts)
        return str(self.path(value)) if value.startswith("/") else value

    def argv(self, args: list[str]) -> list[str]:
        return [self._local(a, hosts=False) for a in args]

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.argv(self.service.command), env=self.env, cwd=self.root,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def health(self) -> subprocess.CompletedProcess:
        """The service's healthcheck, run as compose runs it inside the container."""
        kind, *args = self.service.healthcheck
        argv = self.argv(args) if kind == "CMD" else ["sh", "-c", self._local(args[0], hosts=False)]
        return subprocess.run(argv, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=60)

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"{self.service.name} exited: {self.log.read_text()[-3000:]}"
            checked = self.health()
            if checked.returncode == 0:
                return
            assert time.monotonic() < deadline, (f"{self.service.name} never healthy: {checked.stdout[-1000:]}"
                                                 f"{checked.stderr[-1000:]}\n{self.log.read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


def _localized(node, network: Network):
    if isinstance(node, str):
        return network.localize(node)
    if isinstance(node, int) and not isinstance(node, bool):
        return int(network.localize(str(node)))
    if isinstance(node, list):
        return [_localized(item, network) for item in node]
    if isinstance(node, dict):
        return {key: _localized(value, network) for key, value in node.items()}
    return node


def dockerignored(path: str, dockerignore: Path = ROOT / ".dockerignore") -> bool:
    """Whether ``path`` stays out of the build context: Docker's rules, the last matching line wins,
    ``!`` lines let a path back in, a folder's pattern covers what is under it."""
    from fnmatch import fnmatch

    ignored = False
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            matched = any(fnmatch(p, pattern[3:]) for p in parts)
        else:
            matched = any(fnmatch(p, pattern) for p in prefixes)
        if matched:
            ignored = not keep
    return ignored
