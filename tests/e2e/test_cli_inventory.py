"""The CLI through click's runner and as a real subprocess."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from dc_overview.frontends.cli import cli
from tests.support.ipmi_monitor_db import make_ipmi_monitor_db

CSV = "name,ip,user,port\ngpu-01,10.0.0.1\ngpu-02,10.0.0.2,ubuntu,2222\ngpu-03,10.0.0.3,root,22\n"


@pytest.fixture
def run(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"

    def invoke(*args, input=None):
        return runner.invoke(cli, ["--data-dir", str(data), *args], input=input, catch_exceptions=False)

    invoke.data = data
    return invoke


def test_import_csv_then_list_as_json(run, tmp_path):
    csv = tmp_path / "fleet.csv"
    csv.write_text(CSV)
    result = run("servers", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert "Imported 3 server(s)." in result.output
    listed = json.loads(run("servers", "list", "--json").output)
    assert [(s["name"], s["address"], s["ssh_user"], s["ssh_port"]) for s in listed] == [
        ("gpu-01", "10.0.0.1", "root", 22), ("gpu-02", "10.0.0.2", "ubuntu", 2222), ("gpu-03", "10.0.0.3", "root", 22)]
    table = run("servers", "list").output
    assert table.splitlines()[0].split()[:3] == ["NAME", "ADDRESS", "SSH"]
    assert "ubuntu:2222" in table


def test_import_from_stdin_reports_every_bad_line(run):
    result = run("servers", "import", "-", input="a,10.0.0.1\nb,10.0.0.x\nc,10.0.0.3,root,0\n")
    assert result.exit_code == 1
    assert "stdin line 2: ip:" in result.output and "stdin line 3: port:" in result.output
    assert "Traceback" not in result.output
    assert json.loads(run("servers", "list", "--json").output) == []


def test_add_show_update_remove(run):
    assert run("servers", "add", "gpu-01", "10.0.0.1", "--bmc-ip", "10.1.0.1", "--label", "rack=a1").exit_code == 0
    shown = json.loads(run("servers", "show", "gpu-01", "--json").output)
    assert shown["bmc_ip"] == "10.1.0.1" and shown["labels"] == {"rack": "a1"}
    assert run("servers", "update", "gpu-01", "--port", "2200", "--name", "gpu-one").exit_code == 0
    assert json.loads(run("servers", "show", "gpu-one", "--json").output)["ssh_port"] == 2200
    assert "nothing to change" in run("servers", "update", "gpu-one").output
    assert run("servers", "remove", "gpu-one").exit_code == 0
    result = run("servers", "show", "gpu-one")
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: no server named 'gpu-one' (see `dc-overview servers list`)")


@pytest.mark.parametrize("args, expected_code, text", [
    (["servers", "add", "x", "10.0.0.256"], 1, "address:"),
    (["servers", "add", "x'; DROP TABLE servers;--", "10.0.0.1"], 1, "name:"),
    (["servers", "add", "x", "10.0.0.1", "--port", "70000"], 1, "out of range"),
    (["servers", "add", "x", "10.0.0.1", "--port", "abc"], 2, "not a valid integer"),
    (["servers", "add", "x"], 2, "Missing argument"),
    (["servers", "add", "x", "10.0.0.1", "--label", "job=x"], 1, "reserved"),
    (["nope"], 2, "No such command"),
    (["settings", "set", "ssh_concurrency", "0"], 1, "ssh_concurrency"),
])
def test_errors_are_one_line_with_the_right_exit_code(run, args, expected_code, text):
    result = run(*args)
    assert result.exit_code == expected_code
    assert text in result.output
    assert "Traceback" not in result.output


def test_keys_generate_list_show_remove(run):
    result = run("keys", "generate", "fleet")
    assert result.exit_code == 0 and "ssh-ed25519 " in result.output
    listed = json.loads(run("keys", "list", "--json").output)
    assert listed[0]["name"] == "fleet" and "private_key_path" not in listed[0]
    assert "PRIVATE" not in run("keys", "list", "--json").output
    key_file = run.data / "ssh_keys" / "fleet"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert run("keys", "show", "fleet").output.startswith("ssh-ed25519 ")
    run("servers", "add", "a", "10.0.0.1", "--key", "fleet")
    assert run("keys", "remove", "fleet").exit_code == 1
    run("servers", "remove", "a")
    assert run("keys", "remove", "fleet").exit_code == 0 and not key_file.exists()


def test_targets_settings_export_backup(run, tmp_path):
    run("servers", "add", "gpu-01", "10.0.0.1")
    targets = json.loads(run("targets").output)
    assert targets[0] == {"targets": ["10.0.0.1:9100"],
                          "labels": {"job": "node", "server": "gpu-01", "exporter": "node_exporter"}}
    assert (run.data / "prometheus" / "targets" / "fleet.json").exists()
    assert run("settings", "set", "ssh_concurrency", "80").output.strip() == "ssh_concurrency = 80"
    assert run("settings", "get", "ssh_concurrency").output.strip() == "80"
    assert json.loads(run("settings", "list", "--json").output)["ssh_concurrency"] == 80
    assert "server_ip: 10.0.0.1" in run("export", "fleet-config").output
    out = tmp_path / "fleet_config.yaml"
    assert run("export", "fleet-config", "-o", str(out)).exit_code == 0 and "gpu-01" in out.read_text()
    assert run("backup", str(tmp_path / "b.db")).exit_code == 0 and (tmp_path / "b.db").stat().st_size > 0


def test_import_ipmi_monitor(run, tmp_path):
    db = make_ipmi_monitor_db(tmp_path / "ipmi_events.db",
                              servers=[{"bmc_ip": "10.1.0.1", "server_name": "gpu-01", "server_ip": "10.0.0.1"}],
                              keys=[])
    result = run("import", "ipmi-monitor", "--path", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"][0]["bmc_ip"] == "10.1.0.1"
    bad = tmp_path / "x.db"
    bad.write_text("nope" * 100)
    result = run("import", "ipmi-monitor", "--path", str(bad))
    assert result.exit_code == 1 and str(bad) in result.output


def test_every_command_has_help(run):
    def walk(group, path):
        for name, command in group.commands.items():
            result = run(*path, name, "--help")
            assert result.exit_code == 0 and "Usage:" in result.output, (path, name)
            assert command.help or command.short_help, f"{' '.join([*path, name])} has no help text"
            if hasattr(command, "commands"):
                walk(command, [*path, name])
    walk(cli, [])
    assert run("-h").exit_code == 0


def test_real_subprocess_console_script_and_module(tmp_path):
    env = {**os.environ, "DC_OVERVIEW_DATA": str(tmp_path / "data")}
    csv = tmp_path / "fleet.csv"
    csv.write_text(CSV)
    subprocess.run(["dc-overview", "servers", "import", str(csv)], env=env, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "dc_overview", "servers", "list", "--json"],
                          env=env, check=True, capture_output=True, text=True)
    assert len(json.loads(done.stdout)) == 3
    failed = subprocess.run(["dc-overview", "servers", "show", "missing"], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and failed.stderr.startswith("Error: no server named 'missing'")
    assert "Traceback" not in failed.stderr


def test_a_python_script_does_the_same(tmp_path):
    db = make_ipmi_monitor_db(tmp_path / "ipmi_events.db",
                              servers=[{"bmc_ip": "10.1.0.9", "server_name": "gpu-09", "server_ip": "10.0.0.9"}],
                              keys=[])
    script = tmp_path / "automate.py"
    script.write_text(textwrap.dedent(f"""
        import json, dc_overview
        with dc_overview.open({str(tmp_path / "data")!r}) as fleet:
            fleet.import_servers({CSV!r})
            fleet.import_ipmi_monitor({str(db)!r})
            print(json.dumps({{"servers": [s.name for s in fleet.servers()], "targets": len(fleet.targets())}}))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"servers": ["gpu-01", "gpu-02", "gpu-03", "gpu-09"], "targets": 8}
