"""A real OpenSSH sshd on loopback for integration tests.

One ``LoopbackSshd`` is a set of sshd processes sharing one config, one host
key and one port, listening on any number of 127.0.0.x addresses (sshd takes
at most 16 listen sockets, so every 16 addresses get their own process). Each
address stands for one worker. Logins are by key only, as a plain test user
(``dcotest``; root's shell profile on these machines is slow), with
``UsePAM no`` so no PAM stack is needed.

    sshd = LoopbackSshd(tmp_path, ["127.0.0.2", "127.0.0.3"])
    sshd.start()
    ... connect to 127.0.0.2:sshd.port as sshd.user with sshd.client_key ...
    sshd.replace_host_key()   # the "machine was reinstalled" case
    sshd.close()

The fixtures at the bottom skip locally (fail in CI) where sshd, ssh-keygen
or root are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from tests.support.require import missing, need_executable

TEST_USER = "dcotest"
LISTEN_LIMIT = 16  # sshd's MAX_LISTEN_SOCKS
DEFAULT_MAX_STARTUPS = "10:30:100"  # sshd's own default


def ensure_test_user(name: str = TEST_USER) -> str:
    """A plain local user that can log in by key (``usermod -p '*'``: no
    password, but not locked either, which would refuse key logins too)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                       capture_output=True)
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return name


def set_password(user: str, password: str) -> None:
    """Give a test user a password (for sshd's password authentication)."""
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)


def keygen(path: Path, comment: str = "dc-overview-test") -> Path:
    """An unencrypted ed25519 key pair at ``path`` and ``path.pub``."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path


def free_port(addresses: Sequence[str]) -> int:
    """A TCP port free on every address (checked by binding each)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(_bindable(a, port) for a in addresses[1:]):
            return port
    raise RuntimeError("no TCP port free on all test addresses")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class LoopbackSshd:
    def __init__(self, workdir: Path, addresses: Sequence[str], *, max_startups: str = "1000:30:1000",
                 user: str = TEST_USER, password_auth: bool = False, tcp_forwarding: bool = True) -> None:
        self.dir = Path(workdir)
        self.addresses = list(addresses)
        self.max_startups = max_startups
        self.user = user
        self.password_auth = password_auth
        self.tcp_forwarding = tcp_forwarding  # False: AllowTcpForwarding no (direct-tcpip refused)
        self.port = 0
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_ed25519"
        # sshd reads authorized_keys as the user, who cannot enter pytest's 0700 temp dirs
        self.auth_dir = Path(tempfile.mkdtemp(prefix="dc-overview-sshd-keys-"))
        self.auth_dir.chmod(0o755)
        self._procs: list[subprocess.Popen] = []

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "LoopbackSshd":
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        if not self.host_key.exists():
            keygen(self.host_key, "test-host")
        if not self.client_key.exists():
            keygen(self.client_key, "test-client")
            self.authorize(Path(f"{self.client_key}.pub").read_text())
        for attempt in range(5):
            self.port = free_port(self.addresses)
            try:
                self._spawn()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 4:
                    raise
        return self

    def stop(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs = []

    def close(self) -> None:
        """Stop, and remove what lives outside the work dir."""
        self.stop()
        shutil.rmtree(self.auth_dir, ignore_errors=True)

    def restart(self) -> None:
        """Same port and addresses, freshly started (reads the host key anew)."""
        self.stop()
        self._spawn()

    def replace_host_key(self) -> str:
        """Give the 'machine' a new host key, as a reinstall would; returns the new public key."""
        keygen(self.host_key, "test-host-reinstalled")
        self.restart()
        return self.host_public_key()

    def authorize(self, public_key_line: str) -> None:
        self.auth_dir.mkdir(parents=True, exist_ok=True)
        path = self.auth_dir / self.user
        with path.open("a") as handle:
            handle.write(public_key_line.strip() + "\n")
        path.chmod(0o644)

    def host_public_key(self) -> str:
        return Path(f"{self.host_key}.pub").read_text().strip()

    # -- internals --------------------------------------------------------------------------

    def _config(self, index: int, addresses: Sequence[str]) -> Path:
        lines = [
            f"Port {self.port}",
            *(f"ListenAddress {a}" for a in addresses),
            f"HostKey {self.host_key}",
            f"PidFile {self.dir}/sshd-{index}.pid",
            "UsePAM no",
            f"AuthorizedKeysFile {self.auth_dir}/%u",
            "StrictModes no",  # the test dir lives under the world-writable /tmp
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {self.user}",
            f"MaxStartups {self.max_startups}",
            "MaxSessions 20",
            f"AllowTcpForwarding {'yes' if self.tcp_forwarding else 'no'}",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        path = self.dir / f"sshd-{index}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _spawn(self) -> None:
        sshd = need_executable("sshd", "apt-get install -y openssh-server")
        chunks = [self.addresses[i:i + LISTEN_LIMIT] for i in range(0, len(self.addresses), LISTEN_LIMIT)]
        for index, chunk in enumerate(chunks):
            config = self._config(index, chunk)
            log = self.dir / f"sshd-{index}.log"
            self._procs.append(subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config), "-E", str(log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        deadline = time.monotonic() + 15
        pending = list(self.addresses)
        while pending:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"sshd exited with {proc.returncode}: {self.log_tail()}")
            pending = [a for a in pending if not _banner(a, self.port)]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not answer on {pending[:3]}: {self.log_tail()}")
            if pending:
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for log in sorted(self.dir.glob("sshd-*.log")):
            text += log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def loopback_addresses(count: int, first: int = 2) -> list[str]:
    """127.0.0.2, 127.0.0.3, ... (all of 127.0.0.0/8 reaches this machine)."""
    if first + count > 255:
        raise ValueError("at most 253 addresses in 127.0.0.x")
    return [f"127.0.0.{n}" for n in range(first, first + count)]


def require_sshd() -> None:
    need_executable("sshd", "apt-get install -y openssh-server")
    need_executable("ssh-keygen", "apt-get install -y openssh-client")
    if os.geteuid() != 0:
        missing("root", "the sshd fixture starts sshd and adds a test user; run the tests as root")
    if not shutil.which("useradd") and not os.path.exists("/usr/sbin/useradd"):
        missing("useradd", "apt-get install -y passwd")


# Registered as ``sshd``; a test module imports ``sshd_fixture`` and asks for ``sshd``.
@pytest.fixture(scope="module", name="sshd")
def sshd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """One sshd on 127.0.0.2..127.0.0.4 with room for many logins at once."""
    require_sshd()
    ensure_test_user()
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"), loopback_addresses(3)).start()
    try:
        yield server
    finally:
        server.close()
