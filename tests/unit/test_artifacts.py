"""The artifact cache: pinned downloads checked by sha256, fetched once,
local binaries checked for their machine type, a stable GPU zipapp."""

import asyncio
import hashlib
import io
import tarfile

import pytest

from dc_overview import errors
from dc_overview.artifacts import (
    NODE_EXPORTER_RELEASES,
    ArtifactCache,
    Release,
    elf_arch,
    sha256,
)
from tests.fakes import FakeDownloader, fake_deps, fake_elf


def release_tarball(release: Release, binary: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(release.member)
        info.size = len(binary)
        archive.addfile(info, io.BytesIO(binary))
    return buffer.getvalue()


def test_the_pinned_releases_name_real_release_files():
    amd64 = NODE_EXPORTER_RELEASES["x86_64"]
    assert amd64.url == ("https://github.com/prometheus/node_exporter/releases/download/v1.8.2/"
                         "node_exporter-1.8.2.linux-amd64.tar.gz")
    assert amd64.member == "node_exporter-1.8.2.linux-amd64/node_exporter"
    assert NODE_EXPORTER_RELEASES["aarch64"].platform == "linux-arm64"
    assert all(len(r.sha256) == 64 for r in NODE_EXPORTER_RELEASES.values())


async def test_a_release_is_downloaded_once_checked_and_cached(tmp_path):
    binary = fake_elf("x86_64", "9.9.9")
    draft = Release("node_exporter", "9.9.9", "linux-amd64", "0" * 64)
    tarball = release_tarball(draft, binary)
    release = Release("node_exporter", "9.9.9", "linux-amd64", hashlib.sha256(tarball).hexdigest())
    downloader = FakeDownloader({release.url: tarball})
    deps = fake_deps(tmp_path, downloader=downloader)

    cache = ArtifactCache(deps, releases={"x86_64": release})
    got = await asyncio.gather(*(cache.node_exporter("x86_64") for _ in range(20)))
    assert downloader.fetched == [release.url]  # twenty workers asked, one download
    assert all(a.content == binary and a.version == "9.9.9" and a.arch == "x86_64" for a in got)
    assert (tmp_path / "artifacts" / release.file_name).read_bytes() == tarball

    again = await ArtifactCache(deps, releases={"x86_64": release}).node_exporter("amd64")
    assert again.sha256 == sha256(binary) and downloader.fetched == [release.url]  # from the cache


async def test_a_download_that_does_not_match_its_pin_is_refused_and_removed(tmp_path):
    release = NODE_EXPORTER_RELEASES["x86_64"]
    deps = fake_deps(tmp_path, downloader=FakeDownloader({release.url: b"not the release"}))
    with pytest.raises(errors.ArtifactChecksumMismatch, match=release.sha256):
        await ArtifactCache(deps).node_exporter("x86_64")
    assert not (tmp_path / "artifacts" / release.file_name).exists()


async def test_a_tampered_cache_file_is_downloaded_again(tmp_path):
    binary = fake_elf("x86_64")
    draft = Release("node_exporter", "1.0.0", "linux-amd64", "0" * 64)
    tarball = release_tarball(draft, binary)
    release = Release("node_exporter", "1.0.0", "linux-amd64", hashlib.sha256(tarball).hexdigest())
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / release.file_name).write_bytes(b"swapped")
    downloader = FakeDownloader({release.url: tarball})
    artifact = await ArtifactCache(fake_deps(tmp_path, downloader=downloader),
                                   releases={"x86_64": release}).node_exporter("x86_64")
    assert artifact.content == binary and downloader.fetched == [release.url]


async def test_unknown_machine_types_and_no_downloader_say_what_to_do(tmp_path):
    with pytest.raises(errors.ArtifactProblem, match="--node-exporter-binary"):
        await ArtifactCache(fake_deps(tmp_path)).node_exporter("riscv64")
    with pytest.raises(errors.ArtifactProblem, match="no downloader"):
        await ArtifactCache(fake_deps(tmp_path)).node_exporter("x86_64")


async def test_a_local_binary_must_suit_the_worker(tmp_path):
    path = tmp_path / "node_exporter"
    path.write_bytes(fake_elf("aarch64"))
    cache = ArtifactCache(fake_deps(tmp_path), node_exporter_binary=path)
    assert (await cache.node_exporter("arm64")).arch == "aarch64"
    with pytest.raises(errors.ArtifactProblem, match="built for aarch64, the worker is x86_64"):
        await cache.node_exporter("x86_64")


def test_elf_machine_types():
    assert elf_arch(fake_elf("x86_64")) == "x86_64"
    assert elf_arch(fake_elf("aarch64")) == "aarch64"
    assert elf_arch(b"#!/bin/sh\n") is None
    assert elf_arch(open("/bin/sh", "rb").read(64)) in ("x86_64", "aarch64")


async def test_the_gpu_exporter_zipapp_is_built_once_and_stays_byte_identical(tmp_path):
    pytest.importorskip("prometheus_client")
    deps = fake_deps(tmp_path)
    first = await ArtifactCache(deps).gpu_exporter()
    second = await ArtifactCache(deps).gpu_exporter()
    assert first.is_zipapp and first.version
    assert first.sha256 == second.sha256  # a re-run of install-exporters pushes nothing new
    assert first.content.startswith(b"#!")
