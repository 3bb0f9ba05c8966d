"""Hand-written fakes of the ports, for unit tests of the use cases."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import attrs

from dc_overview import errors
from dc_overview.domain import Server, SshKey
from dc_overview.ports import Deps, IpmiMonitorData, KeyMaterial


class FakeStorage:
    """In memory; a transaction restores the previous state when it fails."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.servers: dict[int, Server] = {}
        self.keys: dict[int, SshKey] = {}
        self.settings: dict[str, object] = {}
        self.files: dict[str, str] = {}
        self.private_keys: dict[str, str] = {}
        self.next_id = 1
        self.transactions = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.servers, self.keys, self.settings))
        self.transactions += 1
        try:
            yield
        except BaseException:
            self.servers, self.keys, self.settings = saved
            raise

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def list_servers(self) -> list[Server]:
        return sorted(self.servers.values(), key=lambda s: s.name)

    def get_server(self, name: str) -> Server | None:
        return next((s for s in self.servers.values() if s.name == name), None)

    def get_server_by_id(self, server_id: int) -> Server | None:
        return self.servers.get(server_id)

    def find_server_by_address(self, address: str) -> Server | None:
        return next((s for s in self.servers.values() if s.address == address), None)

    def add_server(self, server: Server) -> Server:
        stored = attrs.evolve(server, id=self._id())
        self.servers[stored.id] = stored  # type: ignore[index]
        return stored

    def update_server(self, server: Server) -> Server:
        self.servers[server.id] = server  # type: ignore[index]
        return server

    def remove_server(self, server_id: int) -> None:
        del self.servers[server_id]

    def list_keys(self) -> list[SshKey]:
        return sorted(self.keys.values(), key=lambda k: k.name)

    def get_key(self, name: str) -> SshKey | None:
        return next((k for k in self.keys.values() if k.name == name), None)

    def get_key_by_id(self, key_id: int) -> SshKey | None:
        return self.keys.get(key_id)

    def add_key(self, key: SshKey) -> SshKey:
        if self.get_key(key.name):
            raise errors.DuplicateKey(key.name)
        stored = attrs.evolve(key, id=self._id())
        self.keys[stored.id] = stored  # type: ignore[index]
        return stored

    def remove_key(self, key_id: int) -> None:
        del self.keys[key_id]

    def write_private_key(self, name: str, text: str) -> Path:
        path = str(self.data_dir / "ssh_keys" / name)
        if path in self.private_keys:
            raise errors.DuplicateKey(name)
        self.private_keys[path] = text
        return Path(path)

    def delete_private_key(self, path: str) -> None:
        self.private_keys.pop(path, None)

    def load_settings(self) -> dict[str, object]:
        return dict(self.settings)

    def save_setting(self, name: str, value: object) -> None:
        self.settings[name] = value

    def write_file_atomically(self, relative: str, content: str, mode: int = 0o644) -> Path:
        self.files[relative] = content
        return self.data_dir / relative

    def backup(self, destination: Path) -> None:
        self.files[f"backup:{destination}"] = "copy"


class FakeKeyTool:
    """Keys are text ``FAKE-PRIVATE <id>``; the public key is derived from it."""

    def __init__(self) -> None:
        self.generated = 0

    def generate(self, comment: str) -> KeyMaterial:
        self.generated += 1
        return self.load(f"FAKE-PRIVATE generated-{self.generated}")

    def load(self, private_key: str, passphrase: str | None = None) -> KeyMaterial:
        if not private_key.startswith("FAKE-PRIVATE "):
            raise errors.InvalidKey("private_key", "not a private key in OpenSSH or PEM format")
        blob = base64.b64encode(hashlib.sha256(private_key.encode()).digest()).decode()
        return KeyMaterial(private_key=private_key, public_key=f"ssh-ed25519 {blob} fake")


class FakeIpmiSource:
    def __init__(self, data: dict[Path, IpmiMonitorData] | None = None, where: list[Path] | None = None) -> None:
        self.data = data or {}
        self.where = where or []

    def candidates(self) -> list[Path]:
        return self.where

    def locate(self) -> Path | None:
        return next((p for p in self.where if p in self.data), None)

    def read(self, path: Path) -> IpmiMonitorData:
        if path not in self.data:
            raise errors.ForeignDatabase(f"{path} is not an ipmi-monitor database")
        return self.data[path]


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.moment


def fake_deps(data_dir: Path = Path("/data"), **overrides: object) -> Deps:
    ports: dict[str, object] = {
        "storage": FakeStorage(data_dir),
        "keys": FakeKeyTool(),
        "ipmi_monitor": FakeIpmiSource(),
        "clock": FixedClock(),
    }
    ports.update(overrides)
    return Deps(**ports)  # type: ignore[arg-type]
