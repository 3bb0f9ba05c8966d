"""The Downloader port over HTTPS with aiohttp: streams a release file into
place (a temporary file renamed over the target when complete). What was
downloaded is checked against its pinned sha256 by the caller."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from dc_overview import errors


class HttpDownloader:
    def __init__(self, chunk_size: int = 1 << 16) -> None:
        self.chunk_size = chunk_size

    async def fetch(self, url: str, destination: Path, *, timeout: float) -> None:
        import aiohttp  # only here: commands that download nothing start without it

        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 30))
                async with aiohttp.ClientSession(timeout=client_timeout) as session:
                    async with session.get(url) as response:
                        if response.status != 200:
                            raise errors.ArtifactProblem(
                                f"downloading {url} failed: HTTP {response.status}",
                                "give a local copy instead (--node-exporter-binary PATH)",
                            )
                        async for chunk in response.content.iter_chunked(self.chunk_size):
                            handle.write(chunk)
            os.replace(tmp, destination)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise errors.ArtifactProblem(
                f"downloading {url} failed: {exc or type(exc).__name__}",
                "this machine needs HTTPS access to github.com, or give a local copy (--node-exporter-binary PATH)",
            ) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
