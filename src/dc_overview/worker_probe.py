"""One shell script that tells everything about a worker in one round trip:
OS, kernel, CPU, memory, GPUs, systemd, the exporters (unit, state, whether
they answer on their port, version) and, on request, the sha256 of files.

It is POSIX sh (run as ``sh -s`` with the script on stdin, whatever the
login shell) and prints one ``key=value`` per line; ``parse_probe`` turns
that into ``WorkerFacts``. HTTP checks run on the worker itself against
127.0.0.1, with python3, curl or wget, whichever is there.
"""

from __future__ import annotations

import re
import shlex
from typing import Iterable, Mapping

import attrs

from .exporter_units import SPECS, ExporterSpec, version_command

# Runs the script on stdin as root: directly when logged in as root, else
# through passwordless sudo. The login's own uid is printed first (as
# ``login_uid``) so later steps know whether they need sudo too.
ROOT_SHELL = 'echo "login_uid=$(id -u)"; if [ "$(id -u)" = 0 ]; then exec sh -s; else exec sudo -n sh -s; fi'

SHELL_PRELUDE = r"""
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
say() {
    case $2 in
        *"
"*) printf '%s=%s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')" ;;
        *) printf '%s=%s\n' "$1" "$2" ;;
    esac
}
probe_http() {
    url="http://127.0.0.1:$1/metrics"
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, urllib.request as u
try:
    r = u.urlopen(sys.argv[1], timeout=3); body = r.read(65536)
    print("yes" if r.status == 200 and b"# TYPE " in body else "bad")
except Exception:
    print("no")' "$url"
    elif command -v curl >/dev/null 2>&1; then
        if curl -fsS -m 3 "$url" 2>/dev/null | grep -q '^# TYPE '; then echo yes; else echo no; fi
    elif command -v wget >/dev/null 2>&1; then
        if wget -q -T 3 -O - "$url" 2>/dev/null | grep -q '^# TYPE '; then echo yes; else echo no; fi
    else
        echo unknown
    fi
}
# probe_exporters NAME:PORT ...: one "exporter.NAME.answering=..." line each
# (and python3's version), with a single python3 start when there is one.
probe_exporters() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import platform, sys, urllib.request as u
print("python3=" + platform.python_version())
for arg in sys.argv[1:]:
    name, port = arg.split(":")
    try:
        r = u.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=3); body = r.read(65536)
        answer = "yes" if r.status == 200 and b"# TYPE " in body else "bad"
    except Exception:
        answer = "no"
    print("exporter.%s.answering=%s" % (name, answer))' "$@"
    else
        for arg in "$@"; do say "exporter.${arg%%:*}.answering" "$(probe_http "${arg##*:}")"; done
    fi
}
"""

_FACTS = r"""
say user "$(id -un 2>/dev/null)"
say uid "$(id -u)"
if [ -r /etc/os-release ]; then say os "$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-$NAME}")"; fi
say kernel "$(uname -r)"
say arch "$(uname -m)"
say hostname "$(hostname 2>/dev/null || uname -n)"
say cpus "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
say cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
say mem_kb "$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo 2>/dev/null)"
if [ -d /run/systemd/system ]; then say systemd yes; else say systemd no; fi
if command -v nvidia-smi >/dev/null 2>&1; then
    if command -v timeout >/dev/null 2>&1; then smi="timeout 20 nvidia-smi"; else smi=nvidia-smi; fi
    if out=$($smi -L 2>&1); then say gpu_smi "$(printf '%s\n' "$out" | grep -c '^GPU ')"
    else say gpu_smi_error "$(printf '%s\n' "$out" | head -n 1)"; fi
fi
if [ -d /sys/bus/pci/devices ]; then
    n=0
    for d in /sys/bus/pci/devices/*; do
        read -r vendor < "$d/vendor" 2>/dev/null || continue
        [ "$vendor" = 0x10de ] || continue
        read -r class < "$d/class" 2>/dev/null || continue
        case $class in 0x03*) n=$((n + 1)) ;; esac
    done
    say gpu_pci "$n"
elif command -v lspci >/dev/null 2>&1; then
    say gpu_pci "$(lspci -n -d 10de: 2>/dev/null | awk '$2 ~ /^03/' | wc -l)"
fi
"""


def _exporter_lines(spec: ExporterSpec) -> str:
    key = f"exporter.{spec.name}"
    unit = shlex.quote(spec.unit_path)
    return f"""
if [ -f {unit} ]; then
    say {key}.unit present
    [ -d /run/systemd/system ] && say {key}.enabled "$(systemctl is-enabled {spec.unit} 2>/dev/null)"
else
    say {key}.unit absent
fi
if [ -e {shlex.quote(spec.binary)} ]; then say {key}.version "$({version_command(spec)})"; fi
"""


def _active_lines(specs: list[ExporterSpec]) -> str:
    """One systemctl call for all units: ``is-active`` prints a line per unit."""
    units = " ".join(spec.unit for spec in specs)
    says = "; ".join(f'say exporter.{spec.name}.active "${{{i}:-}}"' for i, spec in enumerate(specs, 1))
    return f"""
if [ -d /run/systemd/system ]; then
    set -- $(systemctl is-active {units} 2>/dev/null)
    {says}
fi
"""


def _hash_lines(paths: Iterable[str]) -> str:
    lines = []
    for path in paths:
        quoted = shlex.quote(path)
        lines.append(f'if [ -f {quoted} ]; then say "sha256.{path}" "$(sha256sum {quoted} | cut -d" " -f1)"; '
                     f'else say "sha256.{path}" absent; fi')
    return "\n".join(lines) + "\n"


def probe_script(specs: Iterable[ExporterSpec] = SPECS, hash_paths: Iterable[str] = ()) -> str:
    specs = list(specs)
    answers = "probe_exporters " + " ".join(f"{spec.name}:{spec.port}" for spec in specs) + "\n"
    return "".join([SHELL_PRELUDE, _FACTS, *map(_exporter_lines, specs), _active_lines(specs), answers,
                    _hash_lines(hash_paths)])


# -- the answer ----------------------------------------------------------------------------


@attrs.frozen
class ExporterProbe:
    name: str
    port: int
    unit_present: bool = False
    active: str = "unknown"  # systemctl is-active: active, inactive, failed, activating, ...
    answering: str = "unknown"  # yes: HTTP 200 with metrics; no; bad: answers, not metrics; unknown
    enabled: str = "unknown"  # systemctl is-enabled: enabled, disabled, ...
    version: str | None = None

    @property
    def running(self) -> bool:
        """Answering on its port, and systemd says active (or cannot say:
        a plain user without a D-Bus system bus gets no answer)."""
        return self.answering == "yes" and self.active in ("active", "unknown")


@attrs.frozen
class WorkerFacts:
    hostname: str | None = None
    user: str | None = None
    uid: int | None = None
    login_uid: int | None = None  # the SSH login's uid, when the probe ran through ROOT_SHELL
    os: str | None = None
    kernel: str | None = None
    arch: str | None = None
    cpus: int | None = None
    cpu_model: str | None = None
    memory_mb: int | None = None
    systemd: bool = False
    python3: str | None = None
    gpu_count: int | None = None
    gpu_source: str = "none"  # nvidia-smi, pci, none
    gpu_note: str | None = None
    exporters: tuple[ExporterProbe, ...] = ()
    hashes: Mapping[str, str | None] = attrs.field(factory=dict)

    def exporter(self, name: str) -> ExporterProbe | None:
        return next((e for e in self.exporters if e.name == name), None)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_version(line: str | None) -> str | None:
    """``node_exporter, version 1.8.2 (branch: ...)`` or ``2.0.0`` -> the version."""
    if not line:
        return None
    found = re.search(r"\bversion\s+v?(\d[\w.+~-]*)", line) or re.fullmatch(r"\s*v?(\d+(?:\.\d+)+[\w.+~-]*)\s*", line)
    return found.group(1) if found else None


def parse_probe(text: str, specs: Iterable[ExporterSpec] = SPECS) -> WorkerFacts:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    exporters = []
    for spec in specs:
        key = f"exporter.{spec.name}"
        exporters.append(ExporterProbe(
            name=spec.name, port=spec.port,
            unit_present=values.get(f"{key}.unit") == "present",
            active=values.get(f"{key}.active") or "unknown",
            answering=values.get(f"{key}.answering") or "unknown",
            enabled=values.get(f"{key}.enabled") or "unknown",
            version=parse_version(values.get(f"{key}.version")),
        ))
    hashes = {k[len("sha256."):]: (None if v == "absent" else v) for k, v in values.items() if k.startswith("sha256.")}
    gpu_count, source, note = _gpus(values)
    mem_kb = _int(values.get("mem_kb"))
    return WorkerFacts(
        hostname=values.get("hostname") or None, user=values.get("user") or None, uid=_int(values.get("uid")),
        login_uid=_int(values.get("login_uid")),
        os=values.get("os") or None, kernel=values.get("kernel") or None,
        arch=values.get("arch") or None, cpus=_int(values.get("cpus")), cpu_model=values.get("cpu_model") or None,
        memory_mb=mem_kb // 1024 if mem_kb is not None else None, systemd=values.get("systemd") == "yes",
        python3=values.get("python3") or None, gpu_count=gpu_count, gpu_source=source, gpu_note=note,
        exporters=tuple(exporters), hashes=hashes,
    )


def _gpus(values: Mapping[str, str]) -> tuple[int | None, str, str | None]:
    """GPUs as the driver sees them, else as the PCI bus does. A driver that
    sees fewer than the bus holds is worth saying: a GPU fell off the bus."""
    smi, pci = _int(values.get("gpu_smi")), _int(values.get("gpu_pci"))
    if smi is not None:
        if pci is not None and pci > smi:
            return smi, "nvidia-smi", f"{pci} NVIDIA GPU(s) on the PCI bus but nvidia-smi lists {smi}"
        return smi, "nvidia-smi", None
    if pci is None:
        return None, "none", "could not count GPUs (no nvidia-smi, no /sys/bus/pci, no lspci)"
    if "gpu_smi_error" in values:
        return pci, "pci", f"nvidia-smi failed ({values['gpu_smi_error'][:120]}); counted on the PCI bus"
    return pci, "pci", None
