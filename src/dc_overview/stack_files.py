"""Writing the stack's config files into the data dir.

Each file is written atomically (through the Storage port), and only when
its content or its mode differs from what is on disk: a file that did not
change keeps its modification time, so nothing that watches it (Grafana's
dashboard scan) sees a change, and ``apply`` knows which services read a
file that really changed. Private files (``stack_render.PRIVATE_FILES``) are
written 0600 and, when root writes them into a data dir someone else owns,
given to that owner: the containers that read them run as the data dir's
owner. In a folder the stack alone fills (``stack_render.pruned_folders``),
files it no longer renders are removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from .ports import Deps

PUBLIC_MODE, PRIVATE_MODE = 0o644, 0o600


def _unchanged(path: Path, text: str, mode: int) -> bool:
    try:
        return (path.stat().st_mode & 0o777) == mode and path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


def _give_to_owner_of(data_dir: Path, path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        owner = data_dir.stat()
        current = path.stat()
    except OSError:
        return
    if (current.st_uid, current.st_gid) != (owner.st_uid, owner.st_gid):
        os.chown(path, owner.st_uid, owner.st_gid)


def write_stack_files(deps: Deps, files: Mapping[str, str], *, private: frozenset[str] = frozenset(),
                      pruned: Mapping[str, str] | None = None) -> frozenset[str]:
    """Write ``files`` (data-relative path -> text); remove from each
    ``pruned`` folder (folder -> file suffix) the files not in ``files``.
    Returns the paths written or removed."""
    data_dir = deps.storage.data_dir
    changed: set[str] = set()
    for relative, text in files.items():
        mode = PRIVATE_MODE if relative in private else PUBLIC_MODE
        path = data_dir / relative
        if _unchanged(path, text, mode):
            continue
        deps.storage.write_file_atomically(relative, text, mode=mode)
        if relative in private:
            _give_to_owner_of(data_dir, path)
        changed.add(relative)
    for folder, suffix in (pruned or {}).items():
        try:
            present = sorted((data_dir / folder).iterdir())
        except OSError:
            continue
        for path in present:
            relative = f"{folder}/{path.name}"
            if path.name.endswith(suffix) and path.is_file() and relative not in files:
                path.unlink(missing_ok=True)
                changed.add(relative)
    return frozenset(changed)
