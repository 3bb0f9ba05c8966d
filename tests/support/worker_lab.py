"""Real worker machines for integration tests: containers with systemd as
PID 1 and sshd, made from ``local/dc-worker:bookworm``
(``scripts/build-lab-images``; the engine comes from ``.ci/lib/dockerd.sh``).

Each lab gets its own Docker network with a fixed subnet, so a worker keeps
its address across ``stop()``/``start()`` like a rebooted server. The host
reaches every worker at its address (and they reach the host at the
network's gateway); nothing is published on host ports.

    from tests.support.worker_lab import lab_ssh_key_fixture, worker_lab_fixture  # noqa: F401

    def test_something(worker_lab, lab_ssh_key):
        w1, w2 = worker_lab.start(2, authorized_key=lab_ssh_key.public)
        w1.exec("systemctl is-active ssh")

Outside pytest fixtures use ``WorkerLab`` as a context manager. Everything a
lab creates carries the label ``org.dc-overview.lab`` and the pid of the
process that made it; a new lab removes what dead processes left behind.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest

from tests.support.require import missing, need_executable

IMAGE = "local/dc-worker:bookworm"
LABEL = "org.dc-overview.lab"
LABEL_PID = "org.dc-overview.lab.pid"
KEYS_IN_CONTAINER = "/etc/dc-lab/authorized_keys"
READY_TIMEOUT_S = 90.0

# What systemd as PID 1 needs under this engine (cgroup v1 host, tested) and
# nothing more: its own cgroup namespace plus CAP_SYS_ADMIN lets it mount a
# private, writable cgroup2 hierarchy for its units; /run and /run/lock must
# be tmpfs. A tty makes systemd print its boot log, so `docker logs` shows
# why a boot failed. See .ci/lib/README.md.
RUN_FLAGS: tuple[str, ...] = (
    "--detach",
    "--tty",
    "--cgroupns=private",
    "--cap-add=SYS_ADMIN",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--env=SYSTEMD_COLORS=0",
)
# Untested here: a cgroup v2 engine mounts the cgroup tree read-only for
# unprivileged containers, so systemd needs --privileged there.
RUN_FLAGS_CGROUP_V2_EXTRA: tuple[str, ...] = ("--privileged",)


class LabError(RuntimeError):
    """The lab could not be set up; the message carries the evidence."""


def docker(
    *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; raise ``LabError`` with its stderr on failure if ``check``."""
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and result.returncode != 0:
        raise LabError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def require_lab() -> None:
    """Skip (locally) or fail (CI) unless docker, its engine and the image are there."""
    need_executable("docker", "apt-get install docker.io, then bash .ci/lib/dockerd.sh")
    try:
        answered = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    if not answered:
        missing("a running Docker engine", "bash .ci/lib/dockerd.sh")
    if docker("image", "inspect", IMAGE, check=False, timeout=20).returncode != 0:
        missing(f"the image {IMAGE}", "scripts/build-lab-images")


@dataclass
class Worker:
    """One lab worker. ``name`` is its container name and its hostname."""

    name: str
    ip: str
    network: str

    def exec(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        user: str | None = None,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the worker (``docker exec``); a string goes
        through ``sh -c``. Raises ``LabError`` on a non-zero exit if ``check``."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        opts = ["--interactive"] if input is not None else []
        if user:
            opts += ["--user", user]
        result = docker("exec", *opts, self.name, *argv, check=False, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise LabError(
                f"{self.name}: {argv!r} exited {result.returncode}\n"
                f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}"
            )
        return result

    def stop(self, timeout: int = 20) -> None:
        """Shut the worker down cleanly (systemd gets SIGRTMIN+3)."""
        docker("stop", f"--time={timeout}", self.name, timeout=timeout + 30)

    def start(self, *, wait: bool = True) -> None:
        """Boot a stopped worker again; same address, same host keys."""
        docker("start", self.name)
        if wait:
            self.wait_ready()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze every process: the address still accepts TCP, nothing answers."""
        docker("pause", self.name)

    def unpause(self) -> None:
        docker("unpause", self.name)

    def running(self) -> bool:
        result = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def logs(self, tail: int = 60) -> str:
        result = docker("logs", f"--tail={tail}", self.name, check=False)
        return result.stdout + result.stderr

    def add_authorized_key(self, public_key: str, user: str = "root") -> None:
        """Authorize one more key for ``user`` (as a deploy over SSH would)."""
        line = public_key.strip()
        self.exec(
            ["sh", "-c",
             ('d=$(getent passwd "$1" | cut -d: -f6)/.ssh; mkdir -p -m 700 "$d"; '
              'grep -qxF "$2" "$d/authorized_keys" 2>/dev/null || printf "%s\\n" "$2" >> "$d/authorized_keys"; '
              'chown -R "$1:" "$d"; chmod 600 "$d/authorized_keys"'),
             "sh", user, line]
        )

    def ssh_argv(self, key: Path | str, known_hosts: Path | str, *command: str, user: str = "root") -> list[str]:
        """An ``ssh`` command line from the host to this worker (host key
        learned on first use into ``known_hosts``, never blindly trusted)."""
        return [
            "ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            f"{user}@{self.ip}", *command,
        ]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until systemd has booted (running or degraded) and sshd
        sends its banner on port 22 at the worker's address."""
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            if not self.running():
                raise LabError(f"{self.name} is not running; its console:\n{self.logs()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(
                    f"{self.name}: systemd not up after {timeout:.0f}s (state {state!r}); console:\n{self.logs()}"
                )
            try:
                result = self.exec(["systemctl", "is-system-running", "--wait"], check=False, timeout=max(left, 1))
                state = result.stdout.strip()
            except subprocess.TimeoutExpired:
                continue
            if state in ("running", "degraded"):
                break
            if state in ("maintenance", "stopping"):
                failed = self.exec("systemctl --failed --no-legend", check=False).stdout
                raise LabError(f"{self.name}: systemd is {state}; failed units:\n{failed}\nconsole:\n{self.logs()}")
            time.sleep(0.2)  # starting, offline (bus not up yet) ...
        while True:
            if _ssh_banner(self.ip, 22):
                return
            if time.monotonic() > deadline:
                status = self.exec("systemctl status ssh --no-pager", check=False).stdout
                raise LabError(f"{self.name}: no SSH banner at {self.ip}:22 after {timeout:.0f}s\n{status}")
            time.sleep(0.2)


def _ssh_banner(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> None:
    """Remove lab containers, networks and key files whose creating process
    is gone (a test run that was killed before it could clean up)."""
    fmt = f'{{{{.ID}}}} {{{{.Label "{LABEL_PID}"}}}} {{{{.Label "{LABEL}"}}}}'
    for listing, remove in ((["ps", "--all"], ["rm", "--force"]), (["network", "ls"], ["network", "rm"])):
        listed = docker(*listing, "--filter", f"label={LABEL}", "--format", fmt, check=False).stdout
        for line in listed.splitlines():
            ident, pid, lab_id = (line.split() + ["", ""])[:3]
            if pid.isdigit() and not pid_alive(int(pid)):
                docker(*remove, ident, check=False)
                for leftover in Path(tempfile.gettempdir()).glob(f"dclab-{lab_id}-*") if lab_id else ():
                    shutil.rmtree(leftover, ignore_errors=True)


@dataclass
class WorkerLab:
    """A set of workers on one dedicated Docker network; ``close()`` removes all."""

    lab_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    network: str = ""
    subnet: ipaddress.IPv4Network | None = None
    workers: list[Worker] = field(default_factory=list)
    _keys_dir: Path | None = None
    _next_host: int = 10

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def gateway(self) -> str:
        """The host's address on the lab network (workers reach the host here)."""
        assert self.subnet is not None, "no network yet"
        return str(self.subnet.network_address + 1)

    def _labels(self) -> list[str]:
        return [f"--label={LABEL}={self.lab_id}", f"--label={LABEL_PID}={os.getpid()}"]

    def _ensure_network(self) -> None:
        if self.network:
            return
        reap_stale()
        name = f"dclab-{self.lab_id}"
        # A /24 of our own; retry when the engine says it overlaps another network.
        rng = random.Random()
        last = ""
        for _ in range(30):
            subnet = ipaddress.IPv4Network(f"172.{rng.randint(24, 31)}.{rng.randint(0, 255)}.0/24")
            result = docker("network", "create", "--driver=bridge", f"--subnet={subnet}",
                            f"--gateway={subnet.network_address + 1}", *self._labels(), name, check=False)
            if result.returncode == 0:
                self.network, self.subnet = name, subnet
                return
            last = result.stderr.strip()
            if "overlap" not in last.lower():
                break
        raise LabError(f"cannot create lab network: {last}")

    def _keys_file(self, authorized_key: Path | str) -> Path:
        path = Path(authorized_key)
        text = path.read_text()
        if "PRIVATE KEY" in text:  # handed the private key: use its .pub next to it
            text = Path(f"{path}.pub").read_text()
        if self._keys_dir is None:
            self._keys_dir = Path(tempfile.mkdtemp(prefix=f"dclab-{self.lab_id}-"))
            self._keys_dir.chmod(0o755)
        keys = self._keys_dir / f"authorized_keys.{len(list(self._keys_dir.iterdir()))}"
        keys.write_text(text if text.endswith("\n") else text + "\n")
        keys.chmod(0o644)
        return keys

    def _run_flags(self) -> tuple[str, ...]:
        version = docker("info", "--format", "{{.CgroupVersion}}", check=False).stdout.strip()
        return RUN_FLAGS + (RUN_FLAGS_CGROUP_V2_EXTRA if version == "2" else ())

    def start(self, count: int, *, authorized_key: Path | str, wait: bool = True,
              timeout: float = READY_TIMEOUT_S) -> list[Worker]:
        """Start ``count`` more workers, each with its own address; root and
        the plain user ``lab`` accept ``authorized_key`` (a public key file, or
        a private key with its ``.pub`` beside it)."""
        self._ensure_network()
        assert self.subnet is not None
        keys = self._keys_file(authorized_key)
        flags = self._run_flags()
        started: list[Worker] = []
        for _ in range(count):
            index = len(self.workers) + 1
            name = f"dclab-{self.lab_id}-w{index}"
            ip = str(self.subnet.network_address + self._next_host)
            self._next_host += 1
            worker = Worker(name=name, ip=ip, network=self.network)
            self.workers.append(worker)  # before run: close() removes even a half-made one
            started.append(worker)
            docker("run", *flags, *self._labels(), f"--name={name}", f"--hostname={name}",
                   f"--network={self.network}", f"--ip={ip}",
                   f"--volume={keys}:{KEYS_IN_CONTAINER}:ro", IMAGE)
        if wait and started:
            with ThreadPoolExecutor(max_workers=min(len(started), 8)) as pool:
                list(pool.map(lambda w: w.wait_ready(timeout), started))
        return started

    def close(self) -> None:
        names = [w.name for w in self.workers]
        if names:
            docker("rm", "--force", "--volumes", *names, check=False, timeout=180)
        self.workers.clear()
        if self.network:
            docker("network", "rm", self.network, check=False)
            self.network = ""
        if self._keys_dir is not None:
            shutil.rmtree(self._keys_dir, ignore_errors=True)
            self._keys_dir = None


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: Path


def make_ssh_key(directory: Path, name: str = "id_ed25519") -> SshKey:
    """A fresh ed25519 key pair without a passphrase."""
    need_executable("ssh-keygen", "apt-get install openssh-client")
    private = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dc-overview-lab", "-f", str(private)],
                   check=True, capture_output=True)
    return SshKey(private=private, public=Path(f"{private}.pub"))


# Registered under short names; the functions have their own, so a test
# module imports lab_ssh_key_fixture / worker_lab_fixture (an unused import
# for linters) and its tests ask for lab_ssh_key / worker_lab.
@pytest.fixture(name="lab_ssh_key")
def lab_ssh_key_fixture(tmp_path: Path) -> SshKey:
    keydir = tmp_path / "lab-key"
    keydir.mkdir(mode=0o700)
    return make_ssh_key(keydir)


@pytest.fixture(name="worker_lab")
def worker_lab_fixture() -> Iterator[WorkerLab]:
    require_lab()
    lab = WorkerLab()
    try:
        yield lab
    finally:
        lab.close()
