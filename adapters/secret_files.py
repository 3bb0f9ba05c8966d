"""The SecretStore port as files: ``<data>/secrets/<name>``, mode 0600, in a
0700 folder, each written atomically. Values are never logged.

A value read is kept with its file's inode, size and modification time,
and read again only when one of them changed (a write here or by another
process replaces the file): the web app asks for the scrape token on every
request Prometheus makes, and a ``stat`` is cheaper than a read."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dc_overview import errors
from dc_overview.fsutil import atomic_write

SECRETS_DIR = "secrets"
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")


class FileSecretStore:
    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / SECRETS_DIR
        self._read: dict[str, tuple[tuple[int, int, int], str | None]] = {}
        self._paths: dict[str, str] = {}  # name -> path, checked once

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):  # the use cases only pass known names; this keeps paths inside the folder
            raise errors.InvalidInput("name", f"{name!r} is not a secret name")
        return self.folder / name

    def _folder(self) -> Path:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        return self.folder

    def get(self, name: str) -> str | None:
        path = self._paths.get(name)
        if path is None:
            path = self._paths[name] = str(self._path(name))
        try:
            found = os.stat(path)
            signature = (found.st_ino, found.st_size, found.st_mtime_ns)
            kept = self._read.get(name)
            if kept is None or kept[0] != signature:
                with open(path, encoding="utf-8") as file:
                    kept = self._read[name] = (signature, file.read().strip() or None)
        except FileNotFoundError:
            self._read.pop(name, None)
            return None
        return kept[1]

    def put(self, name: str, value: str) -> None:
        path = self._path(name)
        self._folder()
        atomic_write(path, value + "\n", 0o600)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.is_file() and _NAME.match(p.name))
