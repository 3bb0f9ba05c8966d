"""The LocalHost adapter (``install-exporters --local``): commands through
sh, timeouts that kill the whole process group, files written atomically;
and the probe script run for real by this machine's sh."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from dc_overview.adapters.local_host import LocalShell

from dc_overview import errors
from dc_overview.exporter_units import SPECS
from dc_overview.ports import FileUpload
from dc_overview.worker_probe import parse_probe, probe_script

pytestmark = pytest.mark.integration


async def test_run_with_input_and_exit_status():
    async with LocalShell("here").open() as conn:
        done = await conn.run("cat; echo err >&2; exit 4", timeout=10, input="hello\n")
    assert (done.exit_status, done.stdout, done.stderr) == (4, "hello\n", "err\n")


async def test_a_timeout_kills_the_command_and_its_children():
    marker = f"dc-overview-local-{time.monotonic_ns()}"
    async with LocalShell("here").open() as conn:
        started = time.monotonic()
        with pytest.raises(errors.CommandTimeout, match="within 0.3s"):
            await conn.run(f"sh -c 'sleep 30; : {marker}' & wait", timeout=0.3)
        assert time.monotonic() - started < 3
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout.strip() == ""


async def test_put_writes_atomically_with_the_mode(tmp_path):
    target = tmp_path / "deep" / "file"
    async with LocalShell("here").open() as conn:
        await conn.put([FileUpload(str(target), b"one", 0o640)])
        await conn.put([FileUpload(str(target), b"two", 0o600)])
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(target.parent) == ["file"]


async def test_put_to_a_place_that_cannot_be_written_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    async with LocalShell("here").open() as conn:
        with pytest.raises(errors.RemoteCommandFailed, match=f"cannot write {blocker}/x"):
            await conn.put([FileUpload(f"{blocker}/x", b"")])


async def test_the_probe_script_tells_the_truth_about_this_machine(tmp_path):
    hashed = tmp_path / "hashed"
    hashed.write_bytes(b"abc")
    async with LocalShell("here").open() as conn:
        done = await conn.run("sh -s", timeout=30, input=probe_script(SPECS, [str(hashed), "/nonexistent/x"]))
    assert done.exit_status == 0, done.stderr
    facts = parse_probe(done.stdout)
    assert facts.kernel == os.uname().release and facts.arch == os.uname().machine
    assert facts.uid == os.getuid() and facts.cpus == len(os.sched_getaffinity(0))
    assert facts.systemd == os.path.isdir("/run/systemd/system")
    assert facts.gpu_count is not None and facts.gpu_source in ("nvidia-smi", "pci")
    assert facts.hashes == {str(hashed): "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                            "/nonexistent/x": None}
    assert [e.name for e in facts.exporters] == ["node_exporter", "gpu_exporter"]


async def test_http_get_local_asks_this_machines_loopback():
    import asyncio

    from dc_overview.worker_probe import http_answer

    async def exporter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n# TYPE up gauge\nup 1\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(exporter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, LocalShell("here").open() as conn:
        answered = await conn.http_get_local(port, "/metrics", timeout=3, until=b"\n# TYPE ")
    async with LocalShell("here").open() as conn:  # the server is closed now: refused
        refused = await conn.http_get_local(port, "/metrics", timeout=3)
    assert (answered.connected, http_answer(answered.data)) == (True, "yes")
    assert (refused.connected, http_answer(refused.data)) == (False, "no")
