"""dc-overview's push step of ``install-exporters``, alone: per server, the
same ``open_session`` (key, pinned host key, retries of dropped logins),
``mktemp -d`` staging folder and SFTP ``put`` of the exporter binary and
its unit file through the asyncssh adapter, fanned out with
``for_each_server`` at the fleet's ``ssh_concurrency``. What the full
install does besides (the probe before and after, and the root script
that runs ``systemctl``) is left out: it needs systemd on the worker, and
the benchmark's workers are sshd processes on one machine without it.

    python -m bench.push DATA_DIR BINARY UNIT

Prints one JSON line: {"ok": n, "failed": n, "staged": [...], "errors": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import dc_overview
from dc_overview.fanout import for_each_server
from dc_overview.ports import FileUpload
from dc_overview.worker_session import open_session, select_servers, ssh_options


async def push(data_dir: Path, binary: bytes, unit: bytes) -> dict:
    fleet = dc_overview.open_async(data_dir)
    deps = fleet.deps
    try:
        servers = select_servers(deps, None)
        options = await ssh_options(deps)

        async def work(server):  # type: ignore[no-untyped-def]
            async with open_session(deps, server, options) as session:
                made = await session.conn.run("umask 077; mktemp -d /tmp/dc-overview.XXXXXXXX",
                                              timeout=options.command_timeout)
                stage = made.stdout.strip()
                if made.exit_status != 0 or not stage.startswith("/"):
                    raise RuntimeError(f"mktemp failed: {made.stderr[-200:]}")
                await asyncio.wait_for(session.conn.put([
                    FileUpload(f"{stage}/0", binary, 0o600),
                    FileUpload(f"{stage}/1", unit, 0o600),
                ]), options.transfer_timeout)
            return ("ok", stage)

        def failed(server, exc, seconds):  # type: ignore[no-untyped-def]
            return (type(exc).__name__ + ": " + str(exc)[:120], None)

        results = await for_each_server(servers, work, concurrency=options.concurrency, failed=failed)
    finally:
        await fleet.close()
    outcomes = Counter(word for word, _ in results)
    ok = outcomes.pop("ok", 0)
    return {"ok": ok, "failed": sum(outcomes.values()), "errors": dict(outcomes),
            "staged": [stage for _, stage in results if stage]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("binary", type=Path)
    parser.add_argument("unit", type=Path)
    args = parser.parse_args(argv)
    result = asyncio.run(push(args.data_dir, args.binary.read_bytes(), args.unit.read_bytes()))
    print(json.dumps(result))
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
