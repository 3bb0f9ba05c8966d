"""A real headless Chromium through a real nginx at /dc/ to `dc-overview
serve`, which asks a real Prometheus for GPU data: first-run setup, adding
servers by form and by paste, the dashboard's coloured grid refreshing live,
a check with live progress, settings, services, logout and login.

Screenshots are kept in artifacts/screenshots/ (not in git)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.require import missing, need_executable
from tests.support.web_stack import (
    PROXY_PEER,
    free_port,
    gpu_exposition,
    serve_metrics,
    start_nginx,
    start_prometheus,
    stop,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
PASSWORD = "correct horse battery"

# server -> (GPU temperatures, utilisations) served by its exporters; None: nothing answers
READINGS: dict[str, tuple[list[float], list[float]] | None] = {
    "gpu-01": ([61, 63, 58, 60], [97, 95, 99, 96]),
    "gpu-02": ([55, 57], [40, 35]),
    "gpu-03": ([66, 64, 65, 67, 63, 62, 66, 64], [100, 100, 99, 100, 98, 100, 100, 97]),
    "gpu-04": ([48], [0]),
    "gpu-05": ([59, 60, 61, 58], [76, 81, 79, 80]),
    "gpu-06": ([62, 61], [88, 90]),
    "gpu-07": ([84, 79, 77, 80], [100, 100, 100, 100]),  # amber: hot
    "gpu-08": ([93, 88], [100, 100]),  # red: too hot
    "gpu-09": ([60, 61], [55, 52]),  # amber: its node_exporter does not answer
    "gpu-10": None,  # red: nothing answers
}
UNSCRAPED = ("gpu-11", "gpu-12")  # grey: never checked, not scraped


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        missing("chromium", "apt-get install -y chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing("playwright", "pip install playwright (the browser itself comes from Debian's chromium)")
    folder = tmp_path_factory.mktemp("web")
    stoppers, targets = [], []
    for name, readings in READINGS.items():
        port = node_port = free_port()  # nothing listens there
        if readings is not None:
            port, stop_gpu = serve_metrics(gpu_exposition(*readings))
            stoppers.append(stop_gpu)
        if readings is not None and name != "gpu-09":
            node_port, stop_node = serve_metrics("# TYPE node_load1 gauge\nnode_load1 0.42\n")
            stoppers.append(stop_node)
        targets.append({"targets": [f"127.0.0.1:{port}"], "labels": {"server": name, "exporter": "gpu_exporter"}})
        targets.append({"targets": [f"127.0.0.1:{node_port}"], "labels": {"server": name, "exporter": "node_exporter"}})
    prometheus, prometheus_url = start_prometheus(folder / "prometheus", targets)
    app_port = free_port()
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        app = subprocess.Popen(
            [sys.executable, "-m", "dc_overview", "--data-dir", str(folder / "data"), "serve", "--port", str(app_port),
             "--trusted-proxy", PROXY_PEER, "--prometheus-api", prometheus_url],
            stdout=log, stderr=subprocess.STDOUT,
        )
    nginx = None
    try:
        wait_for_port(app_port, app, "dc-overview serve", log_path.read_text)
        nginx, port = start_nginx(folder / "nginx", app_port)
        yield f"http://127.0.0.1:{port}/dc"
    finally:
        for process in (nginx, app, prometheus):
            if process is not None:
                stop(process)
        for stop_serving in stoppers:
            stop_serving()
        print("serve log:\n" + log_path.read_text()[-3000:])


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    need_executable("chromium", "apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_operator_sets_up_adds_servers_and_watches_the_fleet(site, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    expected = "status of 401"  # the failed login below answers 401; Chromium logs that for the document

    def console(message) -> None:  # type: ignore[no-untyped-def]
        if message.type == "error" and not (expected in message.text and message.location["url"].endswith("/dc/login")):
            problems.append(f"console {message.type}: {message.text} ({message.location['url']})")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    # first run: no admin yet, so the setup form
    page.goto(f"{site}/")
    expect(page).to_have_url(f"{site}/setup")
    shot(page, "01-setup")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/")
    expect(page.locator(".alert.info")).to_contain_text("Welcome, admin")
    shot(page, "02-dashboard-empty")

    # one server by the form, the rest pasted
    page.click("nav.mainnav >> text=Servers")
    page.fill("form[action='/dc/servers'] input[name=name]", "gpu-01")
    page.fill("form[action='/dc/servers'] input[name=address]", "127.0.1.1")
    page.fill("form[action='/dc/servers'] input[name=ssh_port]", "1")
    page.fill("form[action='/dc/servers'] input[name=labels]", "rack=a1")
    page.click("form[action='/dc/servers'] button[type=submit]")
    expect(page.locator(".alert.info")).to_contain_text("Added gpu-01 (127.0.1.1).")
    pasted = "\n".join(f"gpu-{n:02d},127.0.1.{n},root,1" for n in range(2, 13))
    page.fill("form[action='/dc/servers/import'] textarea[name=text]", pasted)
    page.click("form[action='/dc/servers/import'] button[type=submit]")
    expect(page.locator(".alert.info")).to_contain_text("Imported 11 server(s)")
    expect(page.locator("table.table tbody tr")).to_have_count(12)
    shot(page, "03-servers")

    # the dashboard: one tile per server, coloured by what Prometheus says
    page.click("nav.mainnav >> text=Dashboard")
    tiles = page.locator(".fleet-grid .tile")
    expect(tiles).to_have_count(12)
    colour = {name: page.locator(f".tile[data-name='{name}']").get_attribute("class").split()[-1] for name in
              [*READINGS, *UNSCRAPED]}
    assert colour == {
        **{f"gpu-0{n}": "tile-ok" for n in range(1, 7)}, "gpu-07": "tile-warn", "gpu-08": "tile-critical",
        "gpu-09": "tile-warn", "gpu-10": "tile-critical", "gpu-11": "tile-unknown", "gpu-12": "tile-unknown",
    }
    expect(page.locator(".tile[data-name='gpu-08']")).to_contain_text("GPU at 93 °C")
    expect(page.locator(".tile[data-name='gpu-03']")).to_contain_text("8 GPU")
    expect(page.locator("[data-stat=servers_total]")).to_have_text("12")
    expect(page.locator("[data-stat=gpus_total]")).to_have_text(str(sum(len(r[0]) for r in READINGS.values() if r)))
    expect(page.locator("[data-prometheus-problem]")).to_be_hidden()
    shot(page, "04-dashboard")

    # a server added elsewhere appears without reloading the page
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    status = page.evaluate(
        """async ([url, token]) => (await fetch(url, {method: "POST", headers: {"Content-Type": "application/json",
           "X-CSRF-Token": token}, body: JSON.stringify({name: "gpu-13", address: "127.0.1.13", ssh_port: 1})})).status""",
        [f"{site}/api/servers", token],
    )
    assert status == 201
    started = time.monotonic()
    expect(page.locator(".tile[data-name='gpu-13']")).to_be_visible(timeout=20_000)
    print(f"new tile appeared {time.monotonic() - started:.1f} s after the server was added")
    expect(page.locator("[data-stat=servers_total]")).to_have_text("13")

    # a check, with its progress live on the job page
    page.click(".tile[data-name='gpu-01']")
    expect(page.locator("h1")).to_contain_text("gpu-01")
    page.click("button:has-text('Check server')")
    expect(page.locator("[data-job-state]")).to_have_text("1 of 1 failed", timeout=30_000)  # no SSH key yet
    expect(page.locator("[data-job-hosts] tr")).to_have_count(1)
    expect(page.locator("[data-job-hosts] .badge")).not_to_have_text("pending")
    expect(page.locator("[data-job-counts]")).to_contain_text("1 of 1 done")
    shot(page, "05-job")

    # settings: links and secrets, a generated key, the account page
    page.click("nav.mainnav >> text=Settings")
    page.fill("form.secret-form:has(input[value=vastai_api_key]) input[name=value]", "vast-key-0123456789")
    page.click("form.secret-form:has(input[value=vastai_api_key]) button")
    expect(page.locator(".alert.info")).to_contain_text("Saved the Vast.ai API key")
    assert "vast-key-0123456789" not in page.content()
    shot(page, "06-settings")
    page.click("nav.tabs >> text=SSH keys")
    page.fill("form[action='/dc/settings/keys/generate'] input[name=name]", "fleet")
    page.click("form[action='/dc/settings/keys/generate'] button")
    expect(page.locator(".alert.info")).to_contain_text("Generated fleet.")
    expect(page.locator("td.mono.small")).to_contain_text("SHA256:")
    assert "PRIVATE KEY-----\n" not in page.content()
    shot(page, "07-keys")
    page.click("nav.tabs >> text=My account")
    page.fill("input[name=label]", "ansible")
    page.click("button:has-text('Create token')")
    expect(page.locator("[data-new-token]")).to_contain_text("dco_")
    shot(page, "08-account")

    # the landing page the proxy shows at /
    page.click("nav.mainnav >> text=Services")
    expect(page.locator(".service").first).to_be_visible()
    shot(page, "09-services")

    # out, a wrong password, and back in
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(f"{site}/login")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".alert.error")).to_contain_text("wrong user name or password")
    shot(page, "10-login-failed")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/")
    expect(page.locator(".fleet-grid .tile")).to_have_count(13)

    assert problems == [], problems  # no script errors, no CSP violations
    context.close()


def test_the_narrow_screen_still_shows_the_grid(site, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{site}/login")
    if "/setup" in page.url:
        pytest.skip("runs after the setup test")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".fleet-grid .tile").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"
    shot(page, "11-dashboard-phone")
    context.close()


def test_health_through_the_proxy(site):
    with urllib.request.urlopen(f"{site}/api/health", timeout=5) as response:
        assert json.load(response)["status"] == "ok"
