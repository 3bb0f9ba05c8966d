"""The asyncssh adapter under a low open-files limit: connections beyond
what ``ulimit -n`` leaves room for wait for a slot rather than failing with
"Too many open files" (a real sshd on loopback, this process's own limit)."""

from __future__ import annotations

import asyncio
import os
import resource

import pytest
from dc_overview.adapters.asyncssh_client import AsyncsshClient, connection_room

from dc_overview.ports import SshTarget
from tests.support.sshd import LoopbackSshd, sshd_fixture  # noqa: F401  (the sshd fixture)

pytestmark = pytest.mark.integration

LOGINS = 16


def target(server: LoopbackSshd, index: int) -> SshTarget:
    return SshTarget(name=f"w{index}", host=server.addresses[index % len(server.addresses)], port=server.port,
                     user=server.user, private_key_path=str(server.client_key))


async def test_logins_beyond_the_open_files_limit_wait_instead_of_failing(sshd: LoopbackSshd):
    client = AsyncsshClient()
    async with client.connect(target(sshd, 0), timeout=10) as conn:  # load asyncssh before counting files
        await conn.run("true", timeout=10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    open_now, most = 0, 0

    async def login(index: int) -> str:
        nonlocal open_now, most
        async with client.connect(target(sshd, index), timeout=20) as conn:
            open_now += 1
            most = max(most, open_now)
            done = await conn.run("sleep 0.2; echo up", timeout=20)
            open_now -= 1
            return done.stdout.strip()

    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 12, hard))  # room for fewer than LOGINS sockets
    try:
        room = connection_room()
        client._slots = None  # sized anew under this limit
        answers = await asyncio.gather(*(login(i) for i in range(LOGINS)))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert room == 4  # 12 free files, less FILES_KEPT_FREE: the floor of 4
    assert answers == ["up"] * LOGINS
    assert most <= room
