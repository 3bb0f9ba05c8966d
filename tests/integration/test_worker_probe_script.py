"""The probe script's parts run for real: its awk program over folders laid
out like /proc, /etc and /sys (in each awk a worker may have: mawk, gawk,
busybox), its HTTP clients against a real HTTP server on loopback, and the
whole script under dash and busybox sh."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from dc_overview.exporter_units import ExporterSpec
from dc_overview.worker_probe import (
    AWK_FACTS,
    SHELL_PRELUDE,
    listen_ports,
    parse_probe,
    probe_script,
)
from tests.support.require import need_executable

pytestmark = pytest.mark.integration

PORTS = listen_ports([ExporterSpec("node_exporter", 9100, "n", "/n", ""),
                      ExporterSpec("gpu_exporter", 9835, "g", "/g", "")])
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def awk_command(kind: str) -> list[str]:
    if kind == "busybox":
        return [need_executable("busybox", "apt-get install -y busybox"), "awk"]
    return [need_executable(kind, f"apt-get install -y {kind}")]


AWKS = ["awk", "mawk", "gawk", "busybox"]


def run_awk(kind: str, root: Path, devices: list[Path] = (), pci: bool = True) -> dict[str, str]:
    done = subprocess.run([*awk_command(kind), "-v", f"root={root}", "-v", f"pci={int(pci)}", "-v", f"ports={PORTS}",
                           AWK_FACTS, *map(str, devices)], capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("listening=")  # the shell reads it from the last line
    return dict(line.split("=", 1) for line in lines)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pci_device(root: Path, name: str, vendor: str | None, klass: str | None) -> Path:
    folder = root / "sys" / name
    folder.mkdir(parents=True)
    if vendor:
        write(folder / "vendor", vendor + "\n")
    if klass:
        write(folder / "class", klass + "\n")
    return folder


def tcp_line(n: int, local: str, state: str) -> str:
    return f"   {n}: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000  1000  0 4242 1 0 100 0 0 10 0\n"


@pytest.fixture
def worker_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write(root / "proc/self/status", "Name:\tawk\nUid:\t1000\t1001\t1000\t1001\nGid:\t1\t1\t1\t1\n"
                                     "Cpus_allowed:\tff\nCpus_allowed_list:\t0-3,8\n")
    write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nlab:x:1001:1001::/home/lab:/bin/sh\n")
    write(root / "proc/cpuinfo", "".join(f"processor\t: {i}\nvendor_id\t: AuthenticAMD\n"
                                         f"model name\t: AMD EPYC 7763 64-Core Processor\n\n" for i in range(16)))
    write(root / "proc/meminfo", "MemTotal:       263921664 kB\nMemFree:        1000 kB\n")
    write(root / "proc/sys/kernel/hostname", "gpu-07\n")
    write(root / "proc/sys/kernel/osrelease", "6.8.0-45-generic\n")
    write(root / "proc/sys/kernel/arch", "x86_64\n")
    write(root / "etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS \\"jammy\\""\n')
    write(root / "proc/net/tcp", TCP_HEADER + tcp_line(0, "00000000:0016", "0A")
          + tcp_line(1, "0100007F:266B", "01"))  # ssh listens; 9835 only as an established connection
    write(root / "proc/net/tcp6", TCP_HEADER + tcp_line(0, "00000000000000000000000000000000:238C", "0A"))
    return root


@pytest.mark.parametrize("kind", AWKS)
def test_the_awk_program_reads_every_fact(kind: str, worker_root: Path):
    devices = [pci_device(worker_root, "gpu0", "0x10de", "0x030200"), pci_device(worker_root, "gpu1", "0x10de", "0x030000"),
               pci_device(worker_root, "audio", "0x10de", "0x040300"), pci_device(worker_root, "igpu", "0x8086", "0x030000"),
               pci_device(worker_root, "gone", None, None), worker_root / "sys" / "*"]  # an unmatched glob too
    facts = run_awk(kind, worker_root, devices)
    assert facts == {"hostname": "gpu-07", "kernel": "6.8.0-45-generic", "arch": "x86_64",
                     "uid": "1001", "user": "lab", "cpus": "5", "cpu_model": "AMD EPYC 7763 64-Core Processor",
                     "mem_kb": "263921664", "os": 'Ubuntu 22.04.4 LTS "jammy"', "gpu_pci": "2",
                     "listening": "node_exporter"}


@pytest.mark.parametrize("kind", AWKS)
def test_missing_files_are_no_error_and_an_unreadable_tcp_table_is_unknown(kind: str, tmp_path: Path):
    assert run_awk(kind, tmp_path / "nothing", pci=False) == {"listening": "?"}
    assert run_awk(kind, tmp_path / "nothing", pci=True) == {"gpu_pci": "0", "listening": "?"}


@pytest.mark.parametrize("kind", AWKS)
def test_fallbacks_cpus_counted_names_unquoted_and_ipv4_listeners(kind: str, worker_root: Path):
    write(worker_root / "proc/self/status", "Uid:\t4242\t4242\t4242\t4242\n")  # no Cpus_allowed_list, no such user
    (worker_root / "proc/sys/kernel/arch").unlink()  # before Linux 6.1
    write(worker_root / "etc/os-release", "NAME='Alpine Linux'\nPRETTY_NAME=\"\"\n")
    (worker_root / "proc/net/tcp6").unlink()  # no IPv6
    write(worker_root / "proc/net/tcp", TCP_HEADER + tcp_line(0, "0100007F:266B", "0A") + tcp_line(1, "00000000:238C", "0A"))
    facts = run_awk(kind, worker_root)
    assert "user" not in facts and facts["uid"] == "4242"  # the shell asks `id -un` then
    assert "arch" not in facts and facts["kernel"] == "6.8.0-45-generic"  # and `uname` for the arch
    assert (facts["cpus"], facts["os"]) == ("16", "Alpine Linux")
    assert sorted(facts["listening"].split()) == ["gpu_exporter", "node_exporter"]


# -- HTTP ------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        kind = self.server.kind  # type: ignore[attr-defined]
        if kind == "missing":
            self.send_error(404)
            return
        body = (b"# HELP up 1 when up\n# TYPE up gauge\nup 1\n" * 3000 if kind == "metrics"
                else b"<html><body>a login page</body></html>\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ports():
    """Ports on 127.0.0.1: metrics (yes), a 404 and a web page (bad), closed (no)."""
    servers = []
    found = {}
    for kind in ("metrics", "missing", "page"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.kind = kind  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        found[kind] = server.server_address[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        found["closed"] = s.getsockname()[1]
    yield found
    for server in servers:
        server.shutdown()
        server.server_close()


EXPECTED = {"metrics": "yes", "missing": "bad", "page": "bad", "closed": "no"}


def shell(command: str, sh: str = "sh") -> str:
    done = subprocess.run([*sh.split(), "-c", SHELL_PRELUDE + "\nset -eu\n" + command],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("client", ["curl", "wget", "busybox wget", "python3"])
def test_each_http_client_tells_metrics_from_errors_and_closed_ports(client: str, ports: dict[str, int]):
    if client == "busybox wget":
        need_executable("busybox", "apt-get install -y busybox")
        call = 'wget() { busybox wget "$@"; }; http_wget {port}'  # a function comes before PATH
    elif client == "python3":
        call = "http_python x:{port} | cut -d= -f2"
    else:
        need_executable(client, f"apt-get install -y {client}")
        call = f"http_{client} {{port}}"
    found = {kind: shell(call.replace("{port}", str(port))) for kind, port in ports.items()}
    assert found == EXPECTED


def run_script(script: str, sh: str) -> str:
    if sh == "busybox sh":
        need_executable("busybox", "apt-get install -y busybox")
    done = subprocess.run([*sh.split(), "-s"], input=script, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("sh", ["sh", "busybox sh"])
def test_the_whole_script_asks_only_open_ports_and_a_404_is_bad(sh: str, ports: dict[str, int], tmp_path: Path):
    specs = [ExporterSpec(kind, port, f"dc-test-{kind}.service", str(tmp_path / kind), "test")
             for kind, port in ports.items()]
    facts = parse_probe(run_script(probe_script(specs), sh), specs)
    assert {e.name: e.answering for e in facts.exporters} == EXPECTED
    assert not any(e.unit_present or e.version for e in facts.exporters)


def test_busybox_sh_and_dash_report_the_same_facts(tmp_path: Path):
    hashed = tmp_path / "hashed"
    hashed.write_bytes(b"abc")
    script = probe_script(hash_paths=[str(hashed), "/nonexistent/x"])
    dash, busybox = (parse_probe(run_script(script, sh)) for sh in ("sh", "busybox sh"))
    assert dash == busybox
    assert dash.hashes[str(hashed)].startswith("ba7816bf") and dash.hashes["/nonexistent/x"] is None
    assert dash.user and dash.hostname and dash.cpus and dash.memory_mb and dash.kernel
    assert (dash.hostname, dash.kernel, dash.arch) == tuple(os.uname()[i] for i in (1, 2, 4))


def test_what_proc_sys_kernel_does_not_tell_comes_from_uname_once():
    """A kernel without /proc/sys/kernel/arch (before 6.1): the arch comes
    from uname, the rest from awk, each fact once."""
    script = probe_script(http=False, python=False)
    without = script.replace("/proc/sys/kernel/arch", "/proc/sys/kernel/no-such-file")
    assert without != script
    out = run_script(without, "sh")
    assert [line.split("=", 1)[0] for line in out.splitlines()].count("arch") == 1
    assert out.count("\nhostname=") + out.startswith("hostname=") == 1
    facts = parse_probe(out)
    assert (facts.hostname, facts.kernel, facts.arch) == tuple(os.uname()[i] for i in (1, 2, 4))
    assert facts.python3 is None  # python=False: not asked


def test_without_awk_the_user_still_comes_from_id(tmp_path: Path):
    """awk broken or missing: the facts it reads are gone, but the user and
    uid still come (from id) and the script still finishes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "awk").symlink_to(shutil.which("false") or "/bin/false")
    script = probe_script().replace("facts=$(awk ", f"facts=$({bin_dir}/awk ", 1)
    assert script != probe_script()
    facts = parse_probe(run_script(script, "sh"))
    assert facts.uid is not None and facts.user and facts.kernel and facts.cpus is None
    assert (facts.hostname, facts.kernel, facts.arch) == tuple(os.uname()[i] for i in (1, 2, 4))  # from uname
    assert [e.name for e in facts.exporters] == ["node_exporter", "gpu_exporter"]
    assert all(e.answering in ("yes", "bad", "no") for e in facts.exporters)  # asked: listening was unknown


# -- exporter versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("sh", ["sh", "busybox sh"])
def test_a_version_file_not_older_than_its_binary_spares_starting_it(sh: str, tmp_path: Path):
    """The install writes the first line of ``--version`` beside the binary;
    the probe reads it instead of starting the binary, unless the binary is
    newer (replaced since) or the file is missing."""
    binary, runs = tmp_path / "node_exporter", tmp_path / "runs"
    binary.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'node_exporter, version 1.9.1 (branch: HEAD)'\n")
    binary.chmod(0o755)
    spec = ExporterSpec("node_exporter", 9100, "dc-test.service", str(binary), "test")
    script = probe_script([spec], http=False, python=False)

    def version() -> str | None:
        (probe,) = parse_probe(run_script(script, sh), [spec]).exporters
        return probe.version

    assert version() == "1.9.1" and runs.read_text() == "run\n"  # no version file: started
    known = Path(spec.version_path)
    known.write_text("node_exporter, version 1.8.0 (branch: HEAD)\n")
    assert version() == "1.8.0" and runs.read_text() == "run\n"  # read, not started
    stamp = known.stat().st_mtime_ns + 5_000_000_000
    os.utime(binary, ns=(stamp, stamp))  # replaced after the file was written
    assert version() == "1.9.1" and runs.read_text() == "run\nrun\n"
