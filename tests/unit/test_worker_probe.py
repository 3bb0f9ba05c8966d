"""Reading the probe script's answer, and the scripts and units the
installer sends (what they contain, not how a shell runs them: that is in
tests/integration)."""

from dc_overview.exporter_plan import (
    ExporterPlan,
    RemovePlan,
    install_script,
    plan_install,
    plan_remove,
    remove_script,
)
from dc_overview.exporter_units import (
    GPU_SPEC,
    NODE_SPEC,
    gpu_exporter_unit,
    node_exporter_unit,
)
from dc_overview.ports import FileUpload
from dc_overview.worker_probe import (
    ROOT_SHELL,
    listen_ports,
    parse_probe,
    parse_version,
    probe_script,
)

BASE = "kernel=6.1.0\narch=x86_64\nsystemd=yes\n"


def test_gpus_from_nvidia_smi_and_a_gpu_missing_from_the_driver():
    facts = parse_probe(BASE + "gpu_smi=7\ngpu_pci=8\n")
    assert (facts.gpu_count, facts.gpu_source) == (7, "nvidia-smi")
    assert facts.gpu_note == "8 NVIDIA GPU(s) on the PCI bus but nvidia-smi lists 7"
    assert parse_probe(BASE + "gpu_smi=8\ngpu_pci=8\n").gpu_note is None


def test_gpus_from_the_pci_bus_when_nvidia_smi_fails_or_is_missing():
    broken = parse_probe(BASE + "gpu_smi_error=NVIDIA-SMI has failed because it couldn't communicate\ngpu_pci=4\n")
    assert (broken.gpu_count, broken.gpu_source) == (4, "pci") and "nvidia-smi failed" in broken.gpu_note
    assert parse_probe(BASE + "gpu_pci=0\n").gpu_count == 0
    unknown = parse_probe(BASE)
    assert unknown.gpu_count is None and "could not count" in unknown.gpu_note


def test_exporters_and_hashes():
    facts = parse_probe(BASE + "exporter.node_exporter.unit=present\nexporter.node_exporter.active=active\n"
                        "exporter.node_exporter.answering=yes\n"
                        "exporter.node_exporter.version=node_exporter, version 1.8.2 (branch: HEAD)\n"
                        "exporter.gpu_exporter.unit=absent\nexporter.gpu_exporter.answering=no\n"
                        "sha256./opt/x=abc\nsha256./opt/y=absent\nmem_kb=2048000\ncpus=64\n")
    node, gpu = facts.exporters
    assert node.running and node.version == "1.8.2" and node.unit_present
    assert not gpu.running and gpu.active == "unknown" and not gpu.unit_present
    assert facts.hashes == {"/opt/x": "abc", "/opt/y": None}
    assert (facts.memory_mb, facts.cpus) == (2000, 64)


def test_a_plain_user_without_dbus_gets_no_active_state_but_a_running_exporter_counts():
    facts = parse_probe(BASE + "exporter.node_exporter.unit=present\nexporter.node_exporter.active=\n"
                        "exporter.node_exporter.answering=yes\n")
    assert facts.exporters[0].active == "unknown" and facts.exporters[0].running


def test_versions():
    assert parse_version("node_exporter, version 1.5.0+ds (branch: debian/sid)") == "1.5.0+ds"
    assert parse_version("2.0.0") == "2.0.0"
    assert parse_version("v1.8.2") == "1.8.2"
    assert parse_version("false (GNU coreutils) 9.1") is None
    assert parse_version(None) is None


def test_the_probe_hashes_what_it_is_asked_to():
    script = probe_script(hash_paths=["/opt/a b"])
    assert "sha256sum '/opt/a b'" in script and "probe_exporters node_exporter:9100 gpu_exporter:9835" in script


def test_units_are_hardened():
    node = node_exporter_unit()
    for line in ("DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only",
                 "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=\n", "Restart=on-failure",
                 f"ExecStart={NODE_SPEC.binary} --web.listen-address=:9100\n"):
        assert line in node
    gpu = gpu_exporter_unit(zipapp=False, simulate=3)
    assert f"ExecStart={GPU_SPEC.binary} --port 9835 --simulate 3\n" in gpu
    assert "CapabilityBoundingSet=CAP_SYS_RAWIO" in gpu and "PrivateDevices" not in gpu
    assert "NoNewPrivileges=yes" in gpu and "ProtectSystem=strict" in gpu
    # its one writable folder: the compiled modules (gpu_exporter/boot.py), which a removal deletes
    assert "CacheDirectory=dc-gpu-exporter\n" in gpu and "CacheDirectory" not in node
    script = remove_script([RemovePlan(GPU_SPEC, True), RemovePlan(NODE_SPEC, True)])
    assert "rm -rf /var/cache/dc-gpu-exporter\n" in script and script.count("rm -rf") == 1


def test_a_distribution_exporter_on_the_port_is_a_conflict_but_our_own_is_not():
    from dc_overview.exporter_plan import DesiredExporter

    want = DesiredExporter(NODE_SPEC, FileUpload(NODE_SPEC.binary, b"bin"), FileUpload(NODE_SPEC.unit_path, b"unit"))
    foreign = parse_probe(BASE + "exporter.node_exporter.active=inactive\nexporter.node_exporter.answering=yes\n")
    (plan,) = plan_install(foreign, [want])
    assert plan.conflict and "port 9100 already answers" in plan.conflict
    ours = parse_probe(BASE + "exporter.node_exporter.active=active\nexporter.node_exporter.answering=yes\n")
    assert plan_install(ours, [want])[0].conflict is None


def test_install_script_renames_into_place_and_waits_for_the_port():
    upload = FileUpload(NODE_SPEC.binary, b"x", 0o755)
    script = install_script([ExporterPlan(NODE_SPEC, (upload,), "restart", "installed")], "/tmp/dc-overview.abc")
    assert (f"install -D -m 0755 -o root -g root /tmp/dc-overview.abc/f0 {NODE_SPEC.binary}.dc-new && "
            f"mv -f {NODE_SPEC.binary}.dc-new {NODE_SPEC.binary}") in script
    assert "systemctl daemon-reload" not in script  # only the binary changed
    # beside the new binary, its --version's first line, once it is in place
    put, known = script.index(f"mv -f {NODE_SPEC.binary}.dc-new"), script.index(f"> {NODE_SPEC.version_path}.dc-new")
    assert put < known and f"mv -f {NODE_SPEC.version_path}.dc-new {NODE_SPEC.version_path}" in script
    assert script.index("systemctl restart dc-node-exporter.service") < script.index("rm -rf /tmp/dc-overview.abc")
    assert 'until [ "$(probe_http 9100)" = yes ]' in script


def test_remove_touches_only_what_is_there():
    facts = parse_probe(BASE + f"sha256.{NODE_SPEC.binary}=abc\nsha256.{NODE_SPEC.unit_path}=def\n"
                        "exporter.node_exporter.unit=present\n")
    plans = plan_remove(facts)
    assert [(p.spec.name, p.present) for p in plans] == [("node_exporter", True), ("gpu_exporter", False)]
    script = remove_script(plans)
    assert f"rm -f {NODE_SPEC.unit_path} {NODE_SPEC.binary} {NODE_SPEC.version_path}" in script
    assert GPU_SPEC.unit not in script


def test_the_new_probe_output_reads_as_before():
    """The awk program's lines (uid, user, cpus, ..., listening last) and
    python3's version from ``python3 -V`` read into the same facts."""
    facts = parse_probe("hostname=gpu-01\nkernel=6.8.0-45-generic\narch=x86_64\nuid=1000\nuser=lab\ncpus=128\n"
                        "cpu_model=AMD EPYC 9554 64-Core Processor\nmem_kb=1056561152\nos=Ubuntu 24.04.1 LTS\n"
                        "gpu_pci=8\nlistening=node_exporter\nsystemd=yes\npython3=3.12.3\ngpu_smi=8\n"
                        "exporter.node_exporter.version=node_exporter, version 1.8.2 (branch: HEAD)\n"
                        "exporter.gpu_exporter.version=\nexporter.node_exporter.unit=present\n"
                        "exporter.gpu_exporter.unit=absent\nexporter.node_exporter.active=active\n"
                        "exporter.node_exporter.enabled=enabled\nexporter.gpu_exporter.active=inactive\n"
                        "exporter.gpu_exporter.answering=no\nexporter.node_exporter.answering=bad\n")
    assert (facts.hostname, facts.user, facts.uid, facts.cpus, facts.memory_mb) == ("gpu-01", "lab", 1000, 128, 1031798)
    assert (facts.os, facts.python3, facts.gpu_count, facts.gpu_note) == ("Ubuntu 24.04.1 LTS", "3.12.3", 8, None)
    node, gpu = facts.exporters
    assert (node.version, node.active, node.enabled, node.answering, node.running) == ("1.8.2", "active", "enabled",
                                                                                      "bad", False)
    assert (gpu.version, gpu.active, gpu.enabled, gpu.unit_present) == (None, "inactive", "unknown", False)


def test_ports_are_written_as_proc_net_tcp_writes_them():
    assert listen_ports([NODE_SPEC, GPU_SPEC]) == "238C:node_exporter 266B:gpu_exporter"


def test_the_script_starts_few_processes():
    """What a worker runs at every check: one awk, one systemctl (only
    where a unit is there), no urllib, and uname and id only when awk could
    not tell; ROOT_SHELL asks id once."""
    script = probe_script()
    assert script.count("$(uname ") == 1 and script.count("$(awk ") == 1 and "$(hostname" not in script
    assert script.index('if [ -n "$un" ]; then') < script.index("$(uname ")  # only for what awk left out
    assert script.count("systemctl ") == 1 and 'if [ "$systemd" = yes ]' in script and '[ -n "$units" ]' in script
    assert "urllib" not in script and "nproc" not in script and "sed " not in script
    assert script.count("$(id -u)") == 1 and '*"${NL}uid="*) ;; *) say uid "$(id -u)"' in script
    assert "say kernel" in script  # tests/fakes.py tells the probe by it
    assert ROOT_SHELL.count("id -u") == 1 and "exec sudo -n sh -s" in ROOT_SHELL


# -- check: the exporters asked from here ------------------------------------------------------

METRICS = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\r\n# HELP up x\n# TYPE up gauge\nup 1\n"


def test_http_answers_are_decided_as_the_script_decides():
    from dc_overview.worker_probe import http_answer

    assert http_answer(METRICS) == "yes"
    assert http_answer(b"HTTP/1.1 404 Not Found\r\n\r\n404 page not found\n") == "bad"
    assert http_answer(b"HTTP/1.1 500 Internal Server Error\r\n\r\n# TYPE up gauge\n") == "bad"
    assert http_answer(b"HTTP/1.0 200 OK\r\n\r\n<html>a router's page</html>") == "bad"
    assert http_answer(METRICS[:40]) == "bad"  # cut short (the timeout) before any metrics
    assert http_answer(b"") == "no"  # refused, closed at once, or silent until the timeout
    assert http_answer(b"SSH-2.0-OpenSSH_9.2\r\n") == "no"  # something, but not HTTP


def test_answers_read_and_merged_into_the_facts():
    from dc_overview.worker_probe import parse_answers, with_answers

    text = "exporter.node_exporter.answering=yes\nexporter.gpu_exporter.answering=bad\nnoise\nexporter.x.answering=\n"
    assert parse_answers(text) == {"node_exporter": "yes", "gpu_exporter": "bad"}
    facts = with_answers(parse_probe(BASE + "exporter.node_exporter.active=active\n"), {"node_exporter": "yes"})
    assert [(e.name, e.answering, e.running) for e in facts.exporters] == [("node_exporter", "yes", True),
                                                                          ("gpu_exporter", "unknown", False)]


def test_the_check_script_leaves_the_ports_out_and_the_fallback_asks_only_them():
    from dc_overview.worker_probe import AWK_MACHINE, probe_http_script

    full, check = probe_script(), probe_script(http=False, python=False)
    assert "/proc/net/tcp" in full and "\nprobe_exporters node_exporter:9100 gpu_exporter:9835\n" in full
    assert "python3 -V" in full and "python3 -V" not in check  # only the install needs python3's version
    assert "/proc/net/tcp" not in check and "\nprobe_exporters " not in check and "listening(" not in check
    assert check.count("$(awk ") == 1 and AWK_MACHINE.strip().splitlines()[-1] == "}"
    fallback = probe_http_script([GPU_SPEC])
    assert "/proc/net/tcp6" in fallback and fallback.endswith("\nprobe_exporters gpu_exporter:9835\nexit 0\n")
    assert "say kernel" not in fallback and "\nPORTS=266B:gpu_exporter\n" in fallback
