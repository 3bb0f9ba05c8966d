"""Byte-code for the zipapp's modules, kept on disk between starts.

Python cannot keep byte-code for modules it imports from a zip file, so a
zipapp compiles every module from source at every start: pynvml alone is
about 300 KB of source, and compiling it leaves the process about 13 MB
larger for its whole life (and costs about 0.1 s). So at start the zipapp
unpacks its modules once into a folder of their own, compiles them there
in a child process (whose memory goes when it exits), and imports them
from there:

    /var/cache/dc-gpu-exporter/<sha256 of the zipapp's path and bytes, 16 hex>-<cpython-311>/

(``~/.cache/dc-gpu-exporter`` when not root; ``DC_GPU_EXPORTER_CACHE``
names another folder, ``off`` turns this off.) A new zipapp or another
Python gets a folder of its own; the folder of a zipapp that was replaced
at the same path (an upgrade) is removed then. (A running exporter has
imported all it needs by the time it serves, so removing the folder it
started from does not touch it.) The folders are made 0700 and are used
only while they belong to this user and nobody else may write to them,
since their code runs as that user. Whatever goes wrong here, the modules
are imported from the zipapp as before.

This file is shipped at the zipapp's top level, outside the exporter's
package, so that nothing of the package is imported before the choice is
made. It uses the standard library only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ENV = "DC_GPU_EXPORTER_CACHE"
READY = "READY"
SKIP = ("__main__.py", Path(__file__).name)  # the zipapp's start: this file, at its top level


def cache_root() -> Path | None:
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/cache/dc-gpu-exporter")
    return Path.home() / ".cache" / "dc-gpu-exporter"


def _private(path: Path) -> bool:
    """A folder (not a link to one) that is ours, and nobody else may write to."""
    found = path.lstat()
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid() and not found.st_mode & 0o022


def _digest(archive: Path) -> str:
    sha = hashlib.sha256(str(archive).encode() + b"\0")
    with open(archive, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def _unpack_and_compile(archive: Path, root: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=root))  # 0700
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [name for name in zipped.namelist() if name not in SKIP]
            zipped.extractall(staging, members)  # names with .. or a leading / are made safe by zipfile
        done = subprocess.run([sys.executable, "-I", "-m", "compileall", "-q", str(staging)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=120)
        if done.returncode != 0:
            raise OSError(f"compileall exit {done.returncode}")
        (staging / READY).write_text(f"{archive}\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / READY).is_file():  # another start got there first, or a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_replaced(root: Path, keep: Path, archive: Path) -> None:
    """The folders made for earlier zipapps at the same path."""
    for entry in root.iterdir():
        if entry == keep or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            made_for = (entry / READY).read_text().strip()
        except OSError:
            continue
        if made_for == str(archive):
            shutil.rmtree(entry, ignore_errors=True)


def prefer_bytecode(archive: str) -> Path | None:
    """Put the compiled copy of ``archive``'s modules first on ``sys.path``
    (made now if need be); its folder, or None when the zipapp's own
    modules are used."""
    root = cache_root()
    if root is None or not zipfile.is_zipfile(archive):
        return None
    try:
        path = Path(archive).resolve()  # the folders are made and found by this path
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(root):
            print(f"dc-gpu-exporter: not using {root} (not private to this user)", file=sys.stderr)
            return None
        target = root / f"{_digest(path)}-{sys.implementation.cache_tag}"
        if not (target / READY).is_file():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # left unfinished
            _unpack_and_compile(path, root, target)
            _remove_replaced(root, target, path)
        if not _private(target):
            print(f"dc-gpu-exporter: not using {target} (not private to this user)", file=sys.stderr)
            return None
    except (OSError, subprocess.SubprocessError) as error:
        print(f"dc-gpu-exporter: running from the zipapp itself ({error})", file=sys.stderr)
        return None
    sys.path.insert(0, str(target))
    return target
