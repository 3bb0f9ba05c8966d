"""The Ssh port on asyncssh: key logins with the fleet's stored keys, host
keys pinned on first use, commands with timeouts, files over SFTP.

Host keys: nothing is read from or written to ``~/.ssh/known_hosts`` and no
``~/.ssh/config`` or agent is consulted; what a worker is trusted with is
what the inventory says. With a pinned key, only that key (and the
algorithms of its type) is accepted, checked during the key exchange,
before any credential is sent. Without one, the key offered is accepted
and handed back for the caller to pin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import signal
import socket
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, AsyncIterator, Sequence

from dc_overview import errors
from dc_overview.domain import fingerprint
from dc_overview.ports import CommandResult, FileUpload, LoopbackReply, SshTarget
from dc_overview.worker_probe import http_request, read_reply

if TYPE_CHECKING:
    import asyncssh

_PLAIN_KEY_ALGS: list[str] = []  # asyncssh's host key algorithms, set by _load_client_library


def _load_client_library() -> None:
    """asyncssh (and the cryptography under it) on the first connection, so
    the commands that reach no worker start without it. Everything below
    that names ``asyncssh`` runs after a ``connect``."""
    global asyncssh, _HostKeyCheck
    if _PLAIN_KEY_ALGS:
        return
    import asyncssh

    class _HostKeyCheck(asyncssh.SSHClient):
        """Called during the key exchange with the key the server offered."""

        def __init__(self, pinned: asyncssh.SSHKey | None) -> None:
            self.pinned = pinned
            self.offered: asyncssh.SSHKey | None = None

        def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
            self.offered = key
            return self.pinned is None or key == self.pinned

    _PLAIN_KEY_ALGS.extend(alg.decode() for alg in asyncssh.public_key.get_default_public_key_algs())


FILES_KEPT_FREE = 32  # for what else the operation opens: the database, keys, logs, the terminal


def connection_room() -> int:
    """How many connections this process can hold at once: its open-files
    limit (``ulimit -n``) less the files open now and a margin."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = FILES_KEPT_FREE
    return max(4, soft - in_use - FILES_KEPT_FREE)


class AsyncsshClient:
    def __init__(self, *, keepalive_interval: float = 15.0, keepalive_count_max: int = 4) -> None:
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self._keys: dict[str, tuple[float, asyncssh.SSHKey]] = {}
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _gate(self) -> asyncio.Semaphore:
        """Connections past what the open-files limit allows wait for a free
        slot instead of failing with "Too many open files" (one per event loop:
        the sync API runs each call in a loop of its own)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(connection_room()))
        return self._slots[1]

    @contextlib.asynccontextmanager
    async def connect(self, target: SshTarget, *, timeout: float) -> AsyncIterator["AsyncsshConnection"]:
        async with self._gate():
            async with self._connect(target, timeout=timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _connect(self, target: SshTarget, *, timeout: float) -> AsyncIterator["AsyncsshConnection"]:
        _load_client_library()
        pinned = _import_host_key(target) if target.pinned_host_key else None
        checker = _HostKeyCheck(pinned)
        options = dict(
            username=target.user,
            known_hosts=([], [], []),  # nothing trusted up front: every key goes through _HostKeyCheck
            server_host_key_algs=_host_key_algs(pinned),
            client_keys=[self._client_key(target)] if target.private_key_path else None,
            password=target.password,
            preferred_auth="publickey,password,keyboard-interactive" if target.password else "publickey",
            agent_path=None,
            config=None,
            gss_host=None,
            x509_trusted_certs=None,
            connect_timeout=timeout,
            login_timeout=timeout,
            keepalive_interval=self.keepalive_interval,
            keepalive_count_max=self.keepalive_count_max,
        )
        try:
            conn = await asyncssh.connect(target.host, target.port, client_factory=lambda: checker, **options)
        except BaseException as exc:  # mapped to the SshError family, or re-raised
            raise _connect_error(target, checker, exc, timeout) from None
        try:
            host_key = conn.get_server_host_key()
            line = host_key.export_public_key("openssh").decode().split()
            yield AsyncsshConnection(conn, target.name, f"{line[0]} {line[1]}")
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    def _client_key(self, target: SshTarget) -> asyncssh.SSHKey:
        """The server's private key, parsed once per file version."""
        path = str(target.private_key_path)
        try:
            mtime = os.stat(path).st_mtime
            cached = self._keys.get(path)
            if cached and cached[0] == mtime:
                return cached[1]
            key = asyncssh.read_private_key(path)
        except (OSError, asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise errors.SshError(target.name, f"cannot use the SSH key file {path}: {exc}",
                                  "check the key with `dc-overview keys list`") from None
        self._keys[path] = (mtime, key)
        return key


class AsyncsshConnection:
    def __init__(self, conn: asyncssh.SSHClientConnection, name: str, host_key: str) -> None:
        self._conn = conn
        self._name = name
        self.host_key = host_key

    async def run(self, command: str, *, timeout: float, input: str | None = None) -> CommandResult:
        shown = command if len(command) <= 60 else command[:57] + "..."
        try:
            async with self._conn.create_process(command, encoding="utf-8", errors="replace") as process:
                if input is not None:
                    process.stdin.write(input)
                process.stdin.write_eof()
                try:
                    done = await process.wait(timeout=timeout)
                except asyncssh.TimeoutError:
                    with contextlib.suppress(Exception):
                        process.send_signal("KILL")  # sshd passes it on (OpenSSH 7.9+)
                    raise errors.CommandTimeout(
                        self._name, f"`{shown}` did not finish within {timeout:g}s",
                        "raise ssh_command_timeout with `dc-overview settings set` if the worker is just slow",
                    ) from None
        except (asyncssh.Error, OSError) as exc:
            raise errors.SshError(self._name,
                                  f"the connection failed while running `{shown}`: {_reason(exc)}") from None
        status = done.exit_status if done.exit_status is not None else 128 + _signal_number(done.exit_signal)
        return CommandResult(exit_status=status, stdout=str(done.stdout or ""), stderr=str(done.stderr or ""))

    async def http_get_local(self, port: int, path: str, *, timeout: float, until: bytes = b"",
                             limit: int = 65536) -> LoopbackReply:
        """A direct-tcpip channel to 127.0.0.1:PORT: the worker's sshd connects
        and tells "Connection refused" (OPEN_CONNECT_FAILED) apart from not
        forwarding at all (OpenSSH: "open failed", administratively
        prohibited, for AllowTcpForwarding no, PermitOpen, no-port-forwarding)."""
        data, connected = bytearray(), False
        try:
            async with asyncio.timeout(timeout):
                try:
                    reader, writer = await self._conn.open_connection("127.0.0.1", port)
                except asyncssh.ChannelOpenError as exc:
                    return LoopbackReply(forwarded=exc.code == asyncssh.OPEN_CONNECT_FAILED)
                connected = True
                await read_reply(reader, writer, http_request(port, path), until=until, limit=limit, into=data)
        except TimeoutError:
            pass
        except (asyncssh.Error, OSError) as exc:
            raise errors.SshError(self._name, f"the connection failed while asking 127.0.0.1:{port}: "
                                              f"{_reason(exc)}") from None
        return LoopbackReply(connected=connected, data=bytes(data))

    async def put(self, files: Sequence[FileUpload]) -> None:
        try:
            async with self._conn.start_sftp_client() as sftp:
                for upload in files:
                    await self._put_one(sftp, upload)
        except errors.DcOverviewError:
            raise
        except (asyncssh.Error, OSError) as exc:
            raise errors.SshError(self._name, f"file transfer failed: {_reason(exc)}") from None

    async def _put_one(self, sftp: asyncssh.SFTPClient, upload: FileUpload) -> None:
        target = PurePosixPath(upload.path)
        temporary = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp"))
        try:
            await sftp.makedirs(str(target.parent), exist_ok=True)
            async with sftp.open(temporary, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as handle:
                await handle.write(upload.content)
            await sftp.chmod(temporary, upload.mode)
            try:
                await sftp.posix_rename(temporary, str(target))
            except asyncssh.SFTPOpUnsupported:
                await sftp.rename(temporary, str(target), flags=asyncssh.FXR_OVERWRITE)
        except asyncssh.SFTPError as exc:
            with contextlib.suppress(Exception):
                await sftp.remove(temporary)
            raise errors.RemoteCommandFailed(self._name, f"cannot write {upload.path}: {exc.reason}") from None


def _host_key_algs(pinned: asyncssh.SSHKey | None) -> list[str]:
    """The pinned key's type first, so a server that still has that key
    shows it; any other type is still asked for, so a server that lost it
    shows the key it has now (and is refused as changed, naming it)."""
    first = [alg.decode() for alg in pinned.sig_algorithms] if pinned else []
    return first + [alg for alg in _PLAIN_KEY_ALGS if alg not in first]


def _import_host_key(target: SshTarget) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(str(target.pinned_host_key))
    except (asyncssh.KeyImportError, ValueError):
        raise errors.SshError(
            target.name, "the pinned host key in the inventory is not an OpenSSH public key",
            f"forget it with `dc-overview servers trust {target.name}`",
        ) from None


def _connect_error(target: SshTarget, checker: _HostKeyCheck, exc: BaseException, timeout: float) -> BaseException:
    where = f"{target.host}:{target.port}"
    name = target.name
    if isinstance(exc, asyncssh.HostKeyNotVerifiable) and checker.pinned is not None and checker.offered is not None:
        return errors.HostKeyChanged(name, _fp(checker.pinned), _fp(checker.offered))
    if isinstance(exc, asyncssh.PermissionDenied):
        how = "key" if target.private_key_path else "password"
        return errors.SshAuthFailed(
            name, f"{where} refused the login as {target.user!r} with the server's {how}",
            "put the key's public half (`dc-overview keys show NAME`) in the worker's authorized_keys",
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return errors.HostUnreachable(name, f"no SSH answer from {where} within {timeout:g}s",
                                      "is the machine up and the address and port right?")
    if isinstance(exc, ConnectionRefusedError):
        return errors.HostUnreachable(name, f"connection refused by {where} (no sshd on that port?)")
    if isinstance(exc, socket.gaierror):
        return errors.HostUnreachable(name, f"cannot resolve {target.host!r}: {exc.strerror}")
    if isinstance(exc, (asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError, EOFError)):
        return errors.ConnectionDropped(
            name, f"{where} closed the connection during login",
            "too many logins at once for its sshd (MaxStartups)? lower ssh_concurrency or raise MaxStartups",
        )
    if isinstance(exc, (asyncssh.Error, OSError)):
        return errors.HostUnreachable(name, f"SSH to {where} failed: {_reason(exc)}")
    return exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fp(key: asyncssh.SSHKey) -> str:
    return fingerprint(key.export_public_key("openssh").decode())


def _signal_number(name: str | None) -> int:
    try:
        return int(signal.Signals[f"SIG{name}"]) if name else 0
    except KeyError:
        return 0


__all__ = ["AsyncsshClient", "AsyncsshConnection"]
