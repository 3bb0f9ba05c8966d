"""The MetricsSource port on Prometheus' HTTP API (``GET /api/v1/query``).
Each query has its own short-lived client session, so the adapter holds
nothing tied to an event loop; every failure becomes MetricsUnavailable."""

from __future__ import annotations

import json

from dc_overview import errors
from dc_overview.ports import Sample


class PrometheusQuery:
    async def query(self, base_url: str, promql: str, *, timeout: float) -> list[Sample]:
        import aiohttp  # only here: commands that query nothing start without it

        url = base_url.rstrip("/") + "/api/v1/query"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                    session.get(url, params={"query": promql}) as response:
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            raise errors.MetricsUnavailable(f"Prometheus at {base_url} did not answer within {timeout:g} s") from None
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            raise errors.MetricsUnavailable(f"Prometheus at {base_url} cannot be reached: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return _samples(base_url, status, body)


def _samples(base_url: str, status: int, body: object) -> list[Sample]:
    if not isinstance(body, dict) or "status" not in body:
        raise errors.MetricsUnavailable(f"{base_url} did not answer like Prometheus (HTTP {status})")
    if body.get("status") != "success":
        raise errors.MetricsUnavailable(f"Prometheus at {base_url} refused the query: {body.get('error', status)}")
    data = body.get("data") or {}
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        return []
    samples = []
    for item in data.get("result") or []:
        try:
            samples.append(Sample(labels=dict(item["metric"]), value=float(item["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return samples
