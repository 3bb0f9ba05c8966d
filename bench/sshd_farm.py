"""Many "hosts" on one machine for the fleet benchmarks: real OpenSSH sshd
processes listening on 127.0.0.2, 127.0.0.3, ... (all of 127.0.0.0/8 is
loopback), one process per 16 addresses (sshd's listen-socket limit), each
with the bench's own config: key logins only, as a plain user (``dcbench``,
not root: root's shell profile is slow on these machines), ``UsePAM no``,
and limits raised so a fan-out of hundreds is not throttled by sshd itself
(``MaxStartups``). Every address stands for one worker.

The farm also counts the CPU time its sshd processes and their children
(the per-connection sshd, the shells and the commands they run) used:
on one machine the workers' side of a benchmark runs on the same cores
as the controller, and that share must be visible.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from .measure import proc_stat

BENCH_USER = "dcbench"
LISTEN_LIMIT = 16  # sshd's MAX_LISTEN_SOCKS
MAX_STARTUPS = "1000:30:2000"  # start:rate:full; sshd's default is 10:30:100
MAX_SESSIONS = 64


class FarmError(RuntimeError):
    pass


def host_addresses(count: int, first: int = 2) -> list[str]:
    """``count`` loopback addresses, 127.0.0.2 onwards, then 127.0.1.x ..."""
    addresses = []
    number = (127 << 24) + first
    while len(addresses) < count:
        if number & 0xFF not in (0, 255):
            addresses.append(".".join(str((number >> shift) & 0xFF) for shift in (24, 16, 8, 0)))
        number += 1
    return addresses


def ensure_user(name: str = BENCH_USER) -> pwd.struct_passwd:
    """A plain local user that logs in by key: ``usermod -p '*'`` gives it no
    password without locking it (a locked account refuses keys too)."""
    if os.geteuid() != 0:
        raise FarmError("the fleet benchmarks start sshd and add a user: run them as root")
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return pwd.getpwnam(name)


def keygen(path: Path, comment: str) -> Path:
    for stale in (path, Path(f"{path}.pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path


def sshd_binary() -> str:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if not found:
        raise FarmError("sshd is not installed (apt-get install -y openssh-server)")
    return found


class SshdFarm:
    """``count`` workers on one port; ``start()`` waits until every address
    answers with an SSH banner."""

    def __init__(self, workdir: Path, count: int, *, user: str = BENCH_USER,
                 max_startups: str = MAX_STARTUPS, max_sessions: int = MAX_SESSIONS) -> None:
        self.dir = Path(workdir)
        self.addresses = host_addresses(count)
        self.user = user
        self.max_startups = max_startups
        self.max_sessions = max_sessions
        self.port = 0
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_ed25519"
        self._reaper: subprocess.Popen | None = None
        self.listeners: list[int] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SshdFarm:
        self.dir.mkdir(parents=True, exist_ok=True)
        account = ensure_user(self.user)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        keygen(self.host_key, "dc-overview-bench-host")
        keygen(self.client_key, "dc-overview-bench-client")
        self._authorize(account)
        self.port = _free_port(self.addresses)
        chunks = [self.addresses[i:i + LISTEN_LIMIT] for i in range(0, len(self.addresses), LISTEN_LIMIT)]
        configs = [str(self._write_config(index, chunk)) for index, chunk in enumerate(chunks)]
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "bench.sshd_farm", sshd_binary(), *configs],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        line = self._reaper.stdout.readline() if self._reaper.stdout else ""
        try:
            self.listeners = [int(pid) for pid in line.split()]
        except ValueError:
            self.listeners = []
        if len(self.listeners) != len(configs):
            self.stop()
            raise FarmError(f"the sshd processes did not start: {self.log_tail()}")
        self._wait_ready()
        return self

    @property
    def pids(self) -> list[int]:
        """The farm's own process (its descendants are the workers' side)."""
        return [self._reaper.pid] if self._reaper else []

    def stop(self) -> None:
        if self._reaper is None:
            return
        if self._reaper.poll() is None:
            self._reaper.terminate()
        try:
            self._reaper.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._reaper.kill()
            self._reaper.wait()
        if self._reaper.stdout:
            self._reaper.stdout.close()
        self._reaper = None
        self.listeners = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need --------------------------------------------------------------------

    def host_public_key(self) -> str:
        kind, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def known_hosts_lines(self) -> list[str]:
        """OpenSSH known_hosts entries pinning every worker's key."""
        key = self.host_public_key()
        return [f"[{address}]:{self.port} {key}" for address in self.addresses]

    def cpu_seconds(self) -> float:
        """CPU (user+sys) of the workers' side so far: the sshd listeners and
        everything they and the farm's reaper process reaped (per-connection
        sshd processes, the shells and the commands run in them)."""
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in [*self.pids, *self.listeners]:
            try:
                fields = proc_stat(pid)
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
        return total

    def log_tail(self, lines: int = 15) -> str:
        text = "".join(log.read_text(errors="replace") for log in sorted(self.dir.glob("sshd-*.log")))
        return "\n".join(text.splitlines()[-lines:])

    # -- internals ----------------------------------------------------------------------------

    def _authorize(self, account: pwd.struct_passwd) -> None:
        folder = self.dir / "authorized_keys"
        folder.mkdir(exist_ok=True)
        path = folder / self.user
        path.write_text(Path(f"{self.client_key}.pub").read_text())
        path.chmod(0o644)
        self.dir.chmod(0o755)
        folder.chmod(0o755)

    def _write_config(self, index: int, addresses: Sequence[str]) -> Path:
        lines = [
            f"Port {self.port}",
            *(f"ListenAddress {a}" for a in addresses),
            f"HostKey {self.host_key}",
            f"PidFile {self.dir}/sshd-{index}.pid",
            "UsePAM no",
            f"AuthorizedKeysFile {self.dir}/authorized_keys/%u",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {self.user}",
            f"MaxStartups {self.max_startups}",
            f"MaxSessions {self.max_sessions}",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
        ]
        path = self.dir / f"sshd-{index}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.addresses)
        while pending:
            if self._reaper is None or self._reaper.poll() is not None:
                self.stop()
                raise FarmError(f"sshd exited: {self.log_tail()}")
            pending = [a for a in pending if not _banner(a, self.port)]
            if pending:
                if time.monotonic() > deadline:
                    self.stop()
                    raise FarmError(f"sshd did not answer on {pending[:3]}: {self.log_tail()}")
                time.sleep(0.05)


def _free_port(addresses: Sequence[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(_bindable(a, port) for a in addresses[1:]):
            return port
    raise FarmError("no TCP port is free on every bench address")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


# -- the farm's own process ------------------------------------------------------------------------
# sshd's per-connection processes outlive their parents: the session process
# is re-parented when its privileged monitor exits first. This process is
# the sshd listeners' parent and a child subreaper, so every such orphan
# comes here (not to the benchmark, where it would count as the client's
# CPU) and is reaped here, its CPU adding to this process's children time.


def _reaper_main(argv: list[str]) -> int:
    import ctypes
    import signal

    binary, configs = argv[0], argv[1:]
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    listeners = []
    for config in configs:
        log = config.replace(".conf", ".log")
        listeners.append(subprocess.Popen([binary, "-D", "-e", "-f", config, "-E", log], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
    print(" ".join(map(str, listeners)), flush=True)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in listeners:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            os.wait()
        except ChildProcessError:  # no children left
            if stopping:
                return 0
            signal.pause()
        except InterruptedError:
            continue


if __name__ == "__main__":
    sys.exit(_reaper_main(sys.argv[1:]))
