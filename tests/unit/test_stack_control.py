"""Status, logs, /api/services and the proxy's routes over fakes of the ports."""

import attrs
import pytest

from dc_overview import errors
from dc_overview.credentials import clear_secret, secret_status, set_secret
from dc_overview.ports import ServiceRoute
from dc_overview.services import service_states
from dc_overview.stack_apply import apply_stack
from dc_overview.stack_control import reload_prometheus, stack_logs, stack_status, stop_stack
from dc_overview.stack_options import set_stack_option, set_stack_secret
from dc_overview.stack_routes import proxy_routes, register_route, unregister_route
from tests.fakes import (
    FakePrometheusControl,
    FakeProxyRegistry,
    FakeRuntime,
    FakeSecretStore,
    fake_deps,
)
from tests.unit.test_stack_apply import IMAGES


@pytest.fixture
def deps(tmp_path):
    return fake_deps(tmp_path, runtime=FakeRuntime(images=IMAGES), proxy=FakeProxyRegistry(),
                     prometheus=FakePrometheusControl(), secrets=FakeSecretStore())


async def test_status_lists_every_service_missing_ones_too(deps):
    rows = await stack_status(deps)
    assert [(r.service, r.state) for r in rows] == [
        ("prometheus", "missing"), ("grafana", "missing"), ("dc-overview", "missing"), ("cryptolabs-proxy", "missing")]
    await apply_stack(deps)
    await stop_stack(deps, "grafana")
    rows = {r.service: r for r in await stack_status(deps)}
    assert rows["prometheus"].state == "running" and rows["prometheus"].health == "healthy"
    assert rows["prometheus"].version == "v2.55.1"
    assert rows["grafana"].state == "exited"


async def services_status(deps) -> dict[str, dict]:
    return {name: attrs.asdict(state) for name, state in (await service_states(deps)).items()}


async def test_api_services_has_the_shape_the_sister_products_read(deps):
    answer = await services_status(deps)
    assert list(answer) == ["cryptolabs-proxy", "ipmi-monitor", "dc-overview", "grafana", "prometheus",
                            "vastai-exporter", "runpod-exporter"]
    assert answer["prometheus"] == {"running": False, "healthy": False, "container": "prometheus", "port": 9090,
                                    "image": None}
    await apply_stack(deps)
    answer = await services_status(deps)
    assert answer["prometheus"] == {"running": True, "healthy": True, "container": "prometheus", "port": 9090,
                                    "image": "prom/prometheus:v2.55.1"}
    assert answer["cryptolabs-proxy"]["port"] == 443 and answer["dc-overview"]["port"] == 5001
    assert answer["ipmi-monitor"]["running"] is False


async def test_api_services_follow_the_stack_options(deps):
    await set_stack_option(deps, "name_prefix", "dc-")
    deps.storage.save_setting("dc_port", 5101)
    await apply_stack(deps)
    answer = await services_status(deps)
    assert answer["prometheus"]["container"] == "dc-prometheus" and answer["prometheus"]["running"] is True
    assert answer["dc-overview"]["port"] == 5101
    assert answer["ipmi-monitor"]["container"] == "ipmi-monitor"  # the sister product's own, never prefixed


async def test_api_services_without_an_engine_says_nothing_runs(deps):
    deps.runtime.down = True
    answer = await services_status(deps)
    assert not any(v["running"] for v in answer.values())


async def test_logs_of_one_service_or_of_all_prefixed(deps):
    with pytest.raises(errors.StackNotApplied):
        await stack_logs(deps, on_line=print)
    await apply_stack(deps)
    deps.runtime.lines["prometheus"] = ["one", "two", "three"]
    lines: list[str] = []
    await stack_logs(deps, "prometheus", tail=2, on_line=lines.append)
    assert lines == ["two", "three"]
    lines.clear()
    await stack_logs(deps, on_line=lines.append)
    assert "prometheus | three" in lines and "grafana | grafana started" in lines
    with pytest.raises(errors.UnknownService, match="mysql"):
        await stack_logs(deps, "mysql", on_line=lines.append)


async def test_reload_prometheus_goes_to_the_loopback_port_or_refuses_without_one(deps):
    await set_stack_option(deps, "prometheus_local_port", "19090")
    await reload_prometheus(deps)
    assert deps.prometheus.reloads == ["http://127.0.0.1:19090/prometheus"]
    await set_stack_option(deps, "prometheus_local_port", "0")
    with pytest.raises(errors.InvalidStackOption, match="prometheus_local_port"):
        await reload_prometheus(deps)
    await reload_prometheus(deps, "http://prometheus:9090/prometheus")
    deps.prometheus.refuse = "couldn't load configuration"
    with pytest.raises(errors.PrometheusReloadFailed, match="couldn't load"):
        await reload_prometheus(deps, "http://prometheus:9090/prometheus")


async def test_stack_secrets_are_set_but_never_shown(deps):
    await set_stack_secret(deps, "remote_write_password", "  s3cret  ")
    assert deps.secrets.get("remote_write_password") == "s3cret"
    status = await secret_status(deps)
    assert status["remote_write_password"] is True and status["grafana_admin_password"] is False
    assert "s3cret" not in repr(status)
    with pytest.raises(errors.InvalidStackOption):
        await set_stack_secret(deps, "vastai_api_key", "x")  # a secret, but not one only the stack uses
    with pytest.raises(errors.InvalidInput) as bad:
        await set_stack_secret(deps, "grafana_admin_password", "two words")
    assert bad.value.field == "value"
    # the same store and names as every other secret
    await set_secret(deps, "smtp_password", "p4ss")
    assert (await secret_status(deps))["smtp_password"] is True
    await clear_secret(deps, "smtp_password")
    assert deps.secrets.get("smtp_password") is None


async def test_routes_are_checked_before_the_registry_sees_them(deps):
    added = await register_route(deps, "ipmi-monitor", "ipmi", "ipmi-monitor:5000", container="ipmi-monitor")
    assert added == ServiceRoute("ipmi-monitor", "/ipmi/", "ipmi-monitor:5000", container="ipmi-monitor")
    assert await proxy_routes(deps) == [added]
    with pytest.raises(errors.InvalidRoute):
        await register_route(deps, "evil", "/x/", "x:1; return 200")
    await unregister_route(deps, "ipmi-monitor")
    assert await proxy_routes(deps) == []


async def test_an_option_that_cannot_work_is_refused_when_set_not_at_apply(deps):
    with pytest.raises(errors.InvalidStackOption, match="vastai_api_key") as caught:
        await set_stack_option(deps, "vastai_exporter", "yes")
    assert caught.value.field == "vastai_exporter"
    assert "stack.vastai_exporter" not in deps.storage.settings
    deps.secrets.put("vastai_api_key", "k")
    assert (await set_stack_option(deps, "vastai_exporter", "yes")).vastai_exporter is True
