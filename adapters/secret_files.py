"""The SecretStore port as files: ``<data>/secrets/<name>``, mode 0600, in a
0700 folder, each written atomically. Values are never logged."""

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

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):  # the use cases only pass known names; this keeps paths inside the folder
            raise errors.InvalidInput("name", f"{name!r} is not a secret name")
        return self.folder / name

    def _folder(self) -> Path:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        return self.folder

    def get(self, name: str) -> str | None:
        try:
            return self._path(name).read_text().strip() or None
        except FileNotFoundError:
            return None

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
