"""The PrometheusControl port over Prometheus' HTTP lifecycle API
(``--web.enable-lifecycle``)."""

from __future__ import annotations

from dc_overview import errors


class PrometheusLifecycle:
    # A reload waits for remote-write queues it drops to flush (up to
    # --storage.remote.flush-deadline, 1 minute by default).
    def __init__(self, timeout_s: float = 90.0) -> None:
        self.timeout_s = timeout_s

    async def reload(self, base_url: str) -> None:
        import aiohttp  # only here: commands that reload nothing start without it

        url = base_url.rstrip("/") + "/-/reload"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as session:
                async with session.post(url) as response:
                    text = (await response.text()).strip()
                    if response.status != 200:
                        raise errors.PrometheusReloadFailed(text or f"HTTP {response.status} from {url}")
        except aiohttp.ClientError as exc:
            raise errors.PrometheusReloadFailed(f"it cannot be reached at {url} ({exc})") from None
        except TimeoutError:
            raise errors.PrometheusReloadFailed(f"no answer from {url} in time") from None
