import asyncio

from dc_overview.domain import Server
from dc_overview.fanout import for_each_server

SERVERS = [Server(name=f"gpu-{i}", address=f"10.0.0.{i + 1}") for i in range(6)]


async def test_one_result_per_server_in_order_and_bounded():
    running = 0
    peak = 0

    async def work(server):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if server.name == "gpu-2":
            raise RuntimeError("dead host")
        return server.name

    results = await for_each_server(SERVERS, work, concurrency=2,
                                    failed=lambda s, exc, secs: f"{s.name} failed: {exc}")
    assert results == ["gpu-0", "gpu-1", "gpu-2 failed: dead host", "gpu-3", "gpu-4", "gpu-5"]
    assert peak == 2


async def test_a_broken_progress_display_never_costs_the_results():
    calls = []

    def progress(result, done, total):
        calls.append(done)
        raise OSError(24, "Too many open files")

    async def work(server):
        return server.name

    results = await for_each_server(SERVERS, work, concurrency=3, failed=lambda *a: None, progress=progress)
    assert results == [s.name for s in SERVERS]
    assert calls == [1]  # the display is dropped after its first failure
