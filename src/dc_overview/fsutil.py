"""Small file-system helpers shared by the use cases and adapters."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, content: str | bytes, mode: int = 0o644) -> Path:
    """Write ``content`` to ``path`` so that readers see the old file or the
    new one, never a half-written one: a temporary file in the same folder,
    fsync, chmod, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def default_data_dir() -> Path:
    """``$DC_OVERVIEW_DATA``, else ``/etc/dc-overview`` as root, else the XDG data dir."""
    if env := os.environ.get("DC_OVERVIEW_DATA"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/etc/dc-overview")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "dc-overview"
