import asyncio

import pytest

import dc_overview


def test_public_names_are_exported():
    for name in dc_overview.__all__:
        assert hasattr(dc_overview, name), name


def test_sync_twin_has_every_async_method():
    import inspect
    async_methods = {n for n, f in inspect.getmembers(dc_overview.AsyncFleet, inspect.iscoroutinefunction)
                     if not n.startswith("_")}
    for name in async_methods:
        assert callable(getattr(dc_overview.Fleet, name)), name
        assert getattr(dc_overview.Fleet, name).__doc__ == getattr(dc_overview.AsyncFleet, name).__doc__


async def test_async_api_in_an_event_loop(tmp_path):
    async with dc_overview.open_async(tmp_path) as fleet:
        await fleet.add_server("gpu-01", "10.0.0.1")
        results = await asyncio.gather(fleet.servers(), fleet.targets())
        assert [s.name for s in results[0]] == ["gpu-01"] and len(results[1]) == 2
        with pytest.raises(dc_overview.ServerNotFound):
            await fleet.server("nope")


def test_sync_api_with_default_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DC_OVERVIEW_DATA", str(tmp_path / "env-data"))
    with dc_overview.open() as fleet:
        fleet.add_server("gpu-01", "10.0.0.1")
        assert fleet.data_dir == tmp_path / "env-data"
    assert (tmp_path / "env-data" / "dc-overview.db").exists()
