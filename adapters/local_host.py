"""The LocalHost port: this machine through the same connection protocol as
a worker over SSH, so ``install-exporters --local`` on a worker applies the
very plan the master would push (commands through ``sh``, files written
atomically)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import AsyncIterator, Sequence

from dc_overview import errors
from dc_overview.fsutil import atomic_write
from dc_overview.ports import CommandResult, FileUpload, LoopbackReply
from dc_overview.worker_probe import http_request, read_reply


class LocalShell:
    def __init__(self, name: str | None = None) -> None:
        self.name = name or socket.gethostname()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator["LocalConnection"]:
        yield LocalConnection(self.name)


class LocalConnection:
    host_key = ""  # nothing to pin: it is this machine

    def __init__(self, name: str) -> None:
        self._name = name

    async def run(self, command: str, *, timeout: float, input: str | None = None) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(input.encode() if input is not None else b""), timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()
            raise errors.CommandTimeout(self._name, f"`{command[:60]}` did not finish within {timeout:g}s") from None
        status = process.returncode if process.returncode >= 0 else 128 - process.returncode
        return CommandResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    async def http_get_local(self, port: int, path: str, *, timeout: float, until: bytes = b"",
                             limit: int = 65536) -> LoopbackReply:
        """The same question a worker's sshd forwards, asked here directly."""
        data, connected = bytearray(), False
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                connected = True
                await read_reply(reader, writer, http_request(port, path), until=until, limit=limit, into=data)
        except (TimeoutError, OSError):
            pass
        return LoopbackReply(connected=connected, data=bytes(data))

    async def put(self, files: Sequence[FileUpload]) -> None:
        for upload in files:
            try:
                await asyncio.to_thread(atomic_write, Path(upload.path), upload.content, upload.mode)
            except OSError as exc:
                raise errors.RemoteCommandFailed(self._name, f"cannot write {upload.path}: {exc.strerror}") from None


__all__ = ["LocalConnection", "LocalShell"]
