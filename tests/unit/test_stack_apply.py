"""Applying the stack through the ContainerRuntime port (a fake engine here;
tests/integration/test_stack_docker.py does the same against dockerd)."""

import pytest

from dc_overview import errors
from dc_overview.ports import CommandResult
from dc_overview.stack import StackOptions
from dc_overview.stack_apply import apply_stack, container_spec, upgrade_stack
from dc_overview.stack_control import restart_stack, start_stack, stop_stack
from dc_overview.stack_options import current_spec, set_stack_option, stack_options
from tests.fakes import (
    DiskFakeStorage, FakePrometheusControl, FakeProxyRegistry, FakeRuntime, FakeSecretStore, fake_deps,
)

DEFAULTS = StackOptions()
IMAGES = {getattr(DEFAULTS, f): f"sha256:{f}-1" for f in
          ("app_image", "prometheus_image", "grafana_image", "proxy_image", "watchtower_image", "alertmanager_image")}


@pytest.fixture
def deps(tmp_path):
    # files are also written to tmp_path: apply compares what it renders with what is on disk
    return fake_deps(tmp_path, storage=DiskFakeStorage(tmp_path), runtime=FakeRuntime(images=IMAGES),
                     proxy=FakeProxyRegistry(), prometheus=FakePrometheusControl(), secrets=FakeSecretStore())


def created(runtime) -> list[str]:
    return [c[1] for c in runtime.changes() if c[0] == "create"]


def ids(runtime) -> dict[str, str]:
    return {name: info.id for name, info in runtime.infos.items()}


async def test_the_first_apply_creates_every_service_healthy_on_its_network(deps):
    report = await apply_stack(deps)
    runtime = deps.runtime
    assert [(c.service, c.action) for c in report.changes] == [
        ("prometheus", "created"), ("grafana", "created"), ("dc-overview", "created"), ("cryptolabs-proxy", "created")]
    assert created(runtime) == ["prometheus", "grafana", "dc-overview", "cryptolabs-proxy"]
    assert set(runtime.networks) == {"cryptolabs"}
    assert set(runtime.volumes) == {"dc-overview-prometheus-data", "dc-overview-grafana-data"}
    assert all(i.state == "running" and i.health == "healthy" for i in runtime.infos.values())
    labels = runtime.infos["prometheus"].labels
    assert labels["io.cryptolabs.dc-overview.managed"] == "true"
    assert labels["io.cryptolabs.dc-overview.service"] == "prometheus"
    assert len(labels["io.cryptolabs.dc-overview.config-hash"]) == 64
    assert "stack/prometheus/prometheus.yml" in deps.storage.files
    assert "prometheus/targets/fleet.json" in deps.storage.files
    app = runtime.specs["dc-overview"]
    assert app.env["DC_OVERVIEW_TRUSTED_PROXIES"] == "172.30.0.0/16"  # the stack network: the proxy's headers count
    assert app.docker_socket and app.run_as_owner_of == str(deps.storage.data_dir)


async def test_grafanas_password_is_made_once_and_reaches_grafana_only_as_a_file(deps):
    report = await apply_stack(deps)
    assert report.generated_secrets == ("grafana_admin_password",)
    password = deps.secrets.get("grafana_admin_password")
    grafana = deps.runtime.specs["grafana"]
    assert [(f.path, f.content) for f in grafana.files] == [("/run/secrets/grafana_admin_password", password)]
    assert password not in repr(grafana) and password not in str(deps.storage.files)
    assert (await apply_stack(deps)).generated_secrets == ()
    assert deps.secrets.get("grafana_admin_password") == password


async def test_applying_again_changes_nothing(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    deps.runtime.changes()
    report = await apply_stack(deps)
    assert {c.action for c in report.changes} == {"unchanged"}
    assert deps.runtime.changes() == []
    assert ids(deps.runtime) == before
    assert deps.prometheus.reloads == []


async def test_changing_one_option_recreates_only_the_container_it_changes(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    deps.runtime.changes()
    await set_stack_option(deps, "retention", "90d")
    report = await apply_stack(deps)
    assert [(c.service, c.action) for c in report.changes if c.action != "unchanged"] == [
        ("prometheus", "recreated")]
    after = ids(deps.runtime)
    assert after["prometheus"] != before["prometheus"]
    assert {k: v for k, v in after.items() if k != "prometheus"} == {k: v for k, v in before.items() if k != "prometheus"}
    assert "prometheus-previous" not in deps.runtime.infos
    assert "--storage.tsdb.retention.time=90d" in deps.runtime.specs["prometheus"].command


async def test_a_changed_prometheus_config_is_reloaded_and_grafana_recreated_for_its_provisioning(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    await set_stack_option(deps, "scrape_interval", "15s")
    report = await apply_stack(deps)
    actions = {c.service: c.action for c in report.changes}
    assert actions == {"prometheus": "reloaded", "grafana": "recreated", "dc-overview": "unchanged",
                       "cryptolabs-proxy": "unchanged"}
    assert deps.prometheus.reloads == ["http://127.0.0.1:9090/prometheus"]
    assert ids(deps.runtime)["prometheus"] == before["prometheus"]


async def test_a_changed_proxy_config_is_checked_with_nginx_then_reloaded(deps):
    await apply_stack(deps)
    deps.runtime.changes()
    await set_stack_option(deps, "domain", "mon.example.net")
    report = await apply_stack(deps)
    assert {c.service: c.action for c in report.changes}["cryptolabs-proxy"] == "reloaded"
    assert [c[2:] for c in deps.runtime.changes() if c[0] == "exec"] == [
        ("nginx", "-t", "-q", "-c", "/etc/dc-proxy/nginx.conf"),
        ("nginx", "-s", "reload", "-c", "/etc/dc-proxy/nginx.conf")]


async def test_a_proxy_config_nginx_refuses_is_not_reloaded(deps):
    await apply_stack(deps)
    deps.runtime.exec_results[("nginx", "-t")] = CommandResult(1, "", "nginx: [emerg] unexpected \"}\"")
    await set_stack_option(deps, "domain", "mon.example.net")
    with pytest.raises(errors.ProxyConfigInvalid, match="unexpected"):
        await apply_stack(deps)
    assert not [c for c in deps.runtime.changes() if c[:3] == ("exec", "cryptolabs-proxy", "nginx") and "reload" in c]


async def test_an_image_that_cannot_be_pulled_changes_nothing(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    deps.runtime.changes()
    await set_stack_option(deps, "proxy_image", "registry.example/nginx:9")
    with pytest.raises(errors.ImagePullFailed) as caught:
        await apply_stack(deps)
    assert "registry.example/nginx:9" in str(caught.value) and "running stack" in caught.value.hint
    assert deps.runtime.changes() == [("pull", "registry.example/nginx:9")]
    assert ids(deps.runtime) == before


async def test_upgrade_pulls_everything_first_and_recreates_only_what_got_a_new_image(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    runtime = deps.runtime
    runtime.registry = dict(IMAGES) | {DEFAULTS.grafana_image: "sha256:grafana-2"}
    runtime.changes()
    report = await upgrade_stack(deps)
    pulls = [c[1] for c in runtime.calls if c[0] == "pull"]
    assert [(c.service, c.action, c.detail) for c in report.changes if c.action != "unchanged"] == [
        ("grafana", "recreated", "new image")]
    assert set(pulls) == {DEFAULTS.prometheus_image, DEFAULTS.grafana_image, DEFAULTS.app_image, DEFAULTS.proxy_image}
    assert ids(runtime)["prometheus"] == before["prometheus"]


async def test_upgrade_with_an_image_that_cannot_be_pulled_leaves_the_stack_running(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    deps.runtime.registry = {DEFAULTS.prometheus_image: "sha256:prometheus-2"}  # the rest is gone
    with pytest.raises(errors.ImagePullFailed):
        await upgrade_stack(deps)
    assert ids(deps.runtime) == before
    assert all(i.state == "running" for i in deps.runtime.infos.values())


async def test_a_new_container_that_is_not_healthy_is_replaced_by_the_previous_one(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    deps.runtime.images["local/prometheus:broken"] = "sha256:broken"
    deps.runtime.failing_images.add("local/prometheus:broken")
    deps.runtime.lines["prometheus"] = ["level=error msg=\"Error loading config\""]
    await set_stack_option(deps, "prometheus_image", "local/prometheus:broken")
    with pytest.raises(errors.ContainerFailed) as caught:
        await apply_stack(deps)
    assert caught.value.service == "prometheus" and "previous one runs again" in str(caught.value)
    assert "Error loading config" in caught.value.details()
    assert ids(deps.runtime) == before
    assert deps.runtime.infos["prometheus"].state == "running"
    assert deps.runtime.infos["prometheus"].image == DEFAULTS.prometheus_image


async def test_a_service_turned_off_is_removed_and_its_volume_kept(deps):
    await apply_stack(deps)
    await set_stack_option(deps, "grafana", "no")
    report = await apply_stack(deps)
    assert ("grafana", "removed") in [(c.service, c.action) for c in report.changes]
    assert "grafana" not in deps.runtime.infos
    assert "dc-overview-grafana-data" in deps.runtime.volumes


async def test_no_engine_is_a_clear_error(deps):
    deps.runtime.down = True
    with pytest.raises(errors.EngineUnavailable, match="no Docker engine"):
        await apply_stack(deps)


async def test_stop_start_and_restart_the_stack_or_one_service(deps):
    with pytest.raises(errors.StackNotApplied):
        await stop_stack(deps)
    await apply_stack(deps)
    stopped = await stop_stack(deps)
    assert stopped[0] == "cryptolabs-proxy"  # the way in closes first
    assert {i.state for i in deps.runtime.infos.values()} == {"exited"}
    await start_stack(deps, "prometheus")
    assert deps.runtime.infos["prometheus"].state == "running" and deps.runtime.infos["grafana"].state == "exited"
    await start_stack(deps)
    assert {i.state for i in deps.runtime.infos.values()} == {"running"}
    deps.runtime.changes()
    assert await restart_stack(deps, "grafana") == ["grafana"]
    assert ("stop", "grafana") in deps.runtime.changes()
    with pytest.raises(errors.UnknownService):
        await restart_stack(deps, "mysql")


async def test_a_stopped_container_is_started_by_apply_not_recreated(deps):
    await apply_stack(deps)
    before = ids(deps.runtime)
    await stop_stack(deps, "grafana")
    report = await apply_stack(deps)
    assert {c.service: c.action for c in report.changes}["grafana"] == "started"
    assert ids(deps.runtime) == before


async def test_options_are_stored_as_stack_settings_and_bad_stored_ones_are_reported(deps):
    await set_stack_option(deps, "http_port", "8080")
    assert deps.storage.settings["stack.http_port"] == 8080
    assert (await stack_options(deps)).http_port == 8080
    deps.storage.settings["dc_port"] = 5055
    spec = await current_spec(deps)
    assert spec.options.app_port == 5055 and spec.routes[-1].upstream == "dc-overview:5055"
    deps.storage.settings["stack.http_port"] = "not a port"
    with pytest.raises(errors.StorageError, match="http_port"):
        await stack_options(deps)


async def test_secret_values_stay_out_of_env_reprs_and_reports(deps):
    deps.secrets.put("vastai_api_key", "VAST-SECRET-123")
    await set_stack_option(deps, "vastai_exporter", "yes")
    deps.runtime.images[DEFAULTS.vastai_exporter_image] = "sha256:vast"
    report = await apply_stack(deps)
    spec = deps.runtime.specs["vastai-exporter"]
    assert spec.command[0] == "--key=VAST-SECRET-123"  # the exporter's only way in
    assert "VAST-SECRET-123" not in repr(report) and "VAST-SECRET-123" not in str(deps.storage.files)
    assert "VAST-SECRET-123" not in repr(await current_spec(deps))


def test_the_config_hash_changes_with_the_configuration_only(tmp_path):
    from dc_overview.stack import build_stack, find_service
    spec = build_stack(StackOptions())
    service = find_service(spec, "prometheus")
    one = container_spec(spec, service, tmp_path, {}, {})
    assert one.labels == container_spec(spec, service, tmp_path, {}, {}).labels
    other = build_stack(StackOptions(retention="1y"))
    assert container_spec(other, find_service(other, "prometheus"), tmp_path, {}, {}).labels != one.labels
