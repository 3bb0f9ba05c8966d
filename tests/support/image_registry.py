"""An image registry of our own for tests: Debian's docker-registry on a
loopback port (the engine pulls from 127.0.0.0/8 registries over plain
HTTP), standing in for the registry a release is published to."""

from __future__ import annotations

import fcntl
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tests.support.require import need_executable
from tests.support.stack_lab import docker, free_port, wait_until


@dataclass
class Registry:
    """A running registry at ``address`` (127.0.0.1:PORT)."""

    address: str
    process: subprocess.Popen
    pushed: list[str] = field(default_factory=list)

    def push(self, local_image: str, name: str, tag: str = "live") -> str:
        """``local_image`` as ``<registry>/<name>:<tag>``; the local tag is
        dropped again so that the stack really pulls it."""
        remote = f"{self.address}/{name}:{tag}"
        docker("tag", local_image, remote)
        docker("push", remote, timeout=600)
        docker("image", "rm", remote, check=False)
        self.pushed.append(remote)
        return remote

    def close(self) -> None:
        """Stop it, and forget every image reference to it on the engine
        (tags, and the ``repo@digest`` a pull leaves behind)."""
        for image in self.pushed:
            docker("image", "rm", image, check=False)
        listed = docker("images", "--digests", "--format", "{{.Repository}} {{.Digest}}", check=False).stdout
        for repository, digest in (line.split() for line in listed.splitlines() if len(line.split()) == 2):
            if repository.startswith(self.address + "/") and digest.startswith("sha256:"):
                docker("image", "rm", f"{repository}@{digest}", check=False)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


LOCK_WAIT_S = 1800.0
REGISTRY_CACHE = Path(os.environ.get("LAB_CACHE", "/var/cache/dc-overview-lab")) / "registry"


@contextmanager
def registry(folder: Path, storage: Path = REGISTRY_CACHE) -> Iterator[Registry]:
    """A registry on a free loopback port. Its storage is kept in the lab's
    cache between runs, so that pushing the stack's images again only sends
    the layers that changed (a cold push of ~900 MB takes minutes on two
    cores); manifests no tag points to any more, and their layers, are
    removed first. One run at a time uses the storage (a lock)."""
    binary = need_executable("docker-registry", "apt-get install docker-registry")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    config = folder / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    with (storage.parent / ".registry.lock").open("w") as lock:
        wait_until(lambda: _locked(lock), LOCK_WAIT_S, f"the lock on {storage} (another run holds it)", interval=2)
        subprocess.run([binary, "garbage-collect", "--delete-untagged", str(config)], capture_output=True,
                       timeout=600, check=False)
        log = (folder / "registry.log").open("w")
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        found = Registry(f"127.0.0.1:{port}", process)
        try:
            wait_until(lambda: _get_status(f"http://127.0.0.1:{port}/v2/") == 200, 30, "the registry answering")
            yield found
        finally:
            found.close()
            log.close()


def _locked(lock: TextIO) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
