"""Exporter binaries, fetched once on the master and pushed to every worker
(workers need no internet access).

node_exporter comes from its GitHub release, pinned by version and sha256,
cached in ``<data>/artifacts/``; the tarball is checked against the pin
every time it is used, so a corrupted or swapped cache file is never
pushed. A local file can be given instead (``--node-exporter-binary``), for
offline masters or a distribution's build. The GPU exporter is this
package's own zipapp (``gpu_exporter.build.build_zipapp``), or a file given
with ``--gpu-exporter-artifact``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import attrs

from . import errors
from .fsutil import atomic_write
from .ports import Deps

ARTIFACTS_DIR = "artifacts"
DOWNLOAD_TIMEOUT_S = 300.0
NO_GPU_EXPORTER_HINT = "give one with --gpu-exporter-artifact PATH, or use --no-gpu-exporter"


@attrs.frozen
class Release:
    name: str
    version: str
    platform: str  # as the release names it: linux-amd64
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.{self.platform}.tar.gz"

    @property
    def url(self) -> str:
        return f"https://github.com/prometheus/{self.name}/releases/download/v{self.version}/{self.file_name}"

    @property
    def member(self) -> str:
        return f"{self.name}-{self.version}.{self.platform}/{self.name}"


NODE_EXPORTER_VERSION = "1.8.2"
# From the release's sha256sums.txt; keyed by the worker's `uname -m`.
NODE_EXPORTER_RELEASES: Mapping[str, Release] = {
    "x86_64": Release("node_exporter", NODE_EXPORTER_VERSION, "linux-amd64",
                      "6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66"),
    "aarch64": Release("node_exporter", NODE_EXPORTER_VERSION, "linux-arm64",
                       "627382b9723c642411c33f48861134ebe893e70a63bcc8b3fc0619cd0bfac4be"),
}

# ELF e_machine values, named as `uname -m` names the machines that run them.
_ELF_MACHINES = {0x03: "i686", 0x28: "armv7l", 0x3E: "x86_64", 0xB7: "aarch64", 0x15: "ppc64le",
                 0x16: "s390x", 0xF3: "riscv64"}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686", "armv8l": "aarch64"}


@attrs.frozen
class Artifact:
    name: str
    content: bytes = attrs.field(repr=False)
    sha256: str
    source: str  # where it came from, for people
    version: str | None = None  # None: read from the binary on the worker
    arch: str | None = None  # None: runs anywhere (a zipapp)

    @property
    def is_zipapp(self) -> bool:
        return self.arch is None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize_arch(arch: str | None) -> str | None:
    return _ARCH_ALIASES.get(arch, arch) if arch else None


def elf_arch(data: bytes) -> str | None:
    """The machine a Linux executable is built for, or None if it is not ELF."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


def check_runs_on(artifact: Artifact, arch: str | None) -> None:
    """Raise ArtifactProblem when ``artifact`` cannot run on a worker of ``arch``."""
    worker = normalize_arch(arch)
    if artifact.arch is not None and worker is not None and artifact.arch != worker:
        raise errors.ArtifactProblem(
            f"{artifact.source} is built for {artifact.arch}, the worker is {worker}",
            "give a binary for that machine type",
        )


class ArtifactCache:
    """The artifacts of one run: each fetched or built once, however many
    workers ask for it at the same time."""

    def __init__(self, deps: Deps, *, node_exporter_binary: Path | None = None,
                 gpu_exporter_artifact: Path | None = None,
                 releases: Mapping[str, Release] = NODE_EXPORTER_RELEASES) -> None:
        self.deps = deps
        self.releases = releases
        self.node_exporter_binary = node_exporter_binary
        self.gpu_exporter_artifact = gpu_exporter_artifact
        self.dir = deps.storage.data_dir / ARTIFACTS_DIR
        self._lock = asyncio.Lock()
        self._made: dict[str, Artifact] = {}

    async def node_exporter(self, arch: str | None) -> Artifact:
        arch = normalize_arch(arch)
        if self.node_exporter_binary is not None:
            artifact = await self._once("node_exporter:local", self._local_node_exporter)
        else:
            release = self.releases.get(str(arch))
            if release is None:
                raise errors.ArtifactProblem(
                    f"no pinned node_exporter build for machine type {arch}",
                    "give one with --node-exporter-binary PATH",
                )
            artifact = await self._once(f"node_exporter:{arch}", lambda: self._release(release))
        check_runs_on(artifact, arch)
        return artifact

    async def gpu_exporter(self) -> Artifact:
        return await self._once("gpu_exporter", self._gpu_exporter)

    async def _once(self, key: str, make) -> Artifact:  # type: ignore[no-untyped-def]
        async with self._lock:
            if key not in self._made:
                self._made[key] = await make()
            return self._made[key]

    # -- node_exporter ----------------------------------------------------------------------

    async def _local_node_exporter(self) -> Artifact:
        path = Path(self.node_exporter_binary)  # type: ignore[arg-type]
        content = _read(path, "node_exporter_binary")
        arch = elf_arch(content)
        if arch is None:
            raise errors.InvalidInput("node_exporter_binary", f"{path} is not a Linux executable (ELF)")
        return Artifact("node_exporter", content, sha256(content), source=str(path), arch=arch)

    async def _release(self, release: Release) -> Artifact:
        tarball = self.dir / release.file_name
        if not (tarball.exists() and await asyncio.to_thread(_file_sha256, tarball) == release.sha256):
            await self._download(release, tarball)
        content = await asyncio.to_thread(_extract, tarball, release.member)
        return Artifact(release.name, content, sha256(content), source=f"{release.name} {release.version} release",
                        version=release.version, arch=elf_arch(content))

    async def _download(self, release: Release, tarball: Path) -> None:
        if self.deps.downloader is None:
            raise errors.ArtifactProblem(f"cannot download {release.url}: no downloader configured",
                                         "give a local copy with --node-exporter-binary PATH")
        await self.deps.downloader.fetch(release.url, tarball, timeout=DOWNLOAD_TIMEOUT_S)
        actual = await asyncio.to_thread(_file_sha256, tarball)
        if actual != release.sha256:
            tarball.unlink(missing_ok=True)
            raise errors.ArtifactChecksumMismatch(release.url, release.sha256, actual)

    # -- the GPU exporter --------------------------------------------------------------------

    async def _gpu_exporter(self) -> Artifact:
        if self.gpu_exporter_artifact is not None:
            path = Path(self.gpu_exporter_artifact)
            content = _read(path, "gpu_exporter_artifact")
            arch = elf_arch(content)
            if arch is None and not _is_zipapp(content):
                raise errors.InvalidInput("gpu_exporter_artifact",
                                          f"{path} is neither a Linux executable nor a Python zipapp")
            return Artifact("gpu_exporter", content, sha256(content), source=str(path), arch=arch)
        try:
            from .gpu_exporter import __version__ as version
            from .gpu_exporter.build import FILE_NAME, build_zipapp
        except ImportError:
            raise errors.ArtifactProblem("the GPU exporter is not part of this installation",
                                         NO_GPU_EXPORTER_HINT) from None
        cached = self.dir / f"{Path(FILE_NAME).stem}-{version}.pyz"
        try:
            content = await asyncio.to_thread(_build_stable, build_zipapp, cached)
        except (RuntimeError, OSError) as exc:  # e.g. prometheus_client missing here
            raise errors.ArtifactProblem(f"cannot build the GPU exporter: {exc}",
                                         NO_GPU_EXPORTER_HINT) from None
        return Artifact("gpu_exporter", content, sha256(content), source=f"dc-gpu-exporter {version} (built here)",
                        version=version)


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise errors.InvalidInput(field, f"cannot read {path}: {exc.strerror}") from None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(tarball: Path, member: str) -> bytes:
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise errors.ArtifactProblem(f"{tarball} does not hold {member}: {exc}",
                                     f"delete {tarball} to download it again") from None


def _is_zipapp(content: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return "__main__.py" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _zip_digest(content: bytes) -> str:
    """What a zipapp holds (names and contents), not when it was built."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


def _build_stable(build_zipapp, cached: Path) -> bytes:  # type: ignore[no-untyped-def]
    """Build the zipapp; keep the cached copy when it holds the same files,
    so an unchanged exporter has the same sha256 on every run (a re-run then
    pushes nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(build_zipapp(Path(tmp) / cached.name)).read_bytes()
    if cached.exists():
        kept = cached.read_bytes()
        try:
            if _zip_digest(kept) == _zip_digest(fresh):
                return kept
        except zipfile.BadZipFile:
            pass
    atomic_write(cached, fresh, 0o644)
    return fresh
