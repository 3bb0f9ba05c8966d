"""One shell script that tells everything about a worker in one round trip:
OS, kernel, CPU, memory, GPUs, systemd, the exporters (unit, state, whether
they answer on their port, version) and, on request, the sha256 of files.

It is POSIX sh (run as ``sh -s`` with the script on stdin, whatever the
login shell) and prints one ``key=value`` per line; ``parse_probe`` turns
that into ``WorkerFacts``.

It runs on every worker at every check, so it starts as few processes as it
can: one ``awk`` that reads /proc, /etc and /sys with ``getline`` (a missing
file is no error, in mawk, gawk or busybox awk), the host name, kernel and
machine type included, and tells which exporter ports are in LISTEN state;
``uname`` only for what /proc/sys/kernel did not tell (``arch`` before Linux
6.1); ``python3 -V``; ``systemctl`` once, only when systemd runs and one of
our units is there; an exporter's ``--version`` only when its binary is
there; and an HTTP check only for a port something listens on (curl, else
python3 with a raw socket, else wget, on the worker itself against
127.0.0.1). On a worker without our exporters that is three processes in
all, ``sh`` included.

``check`` leaves the ports out (``http=False``: no /proc/net/tcp, no HTTP
client): it asks the exporters through the SSH connection itself and
decides with ``http_answer``; where the worker's sshd does not forward,
``probe_http_script`` asks them on the worker as the full script does. It
leaves ``python3 -V`` out too (``python=False``): only the install needs it.
On a worker without our exporters that is ``sh`` and ``awk`` alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .exporter_units import GPU_SPEC, SPECS, ExporterSpec
from .worker_probe_shell import (
    AWK_FACTS,
    AWK_LISTENING,
    AWK_MACHINE,
    SHELL_PRELUDE,
    UNIT_STATE,
)

__all__ = ["AWK_FACTS", "AWK_LISTENING", "AWK_MACHINE", "HTTP_END", "HTTP_LIMIT", "HTTP_TIMEOUT", "ROOT_SHELL",
           "SHELL_PRELUDE", "ExporterProbe", "WorkerFacts", "http_answer", "listen_ports", "parse_answers",
           "parse_probe", "parse_version", "probe_http_script", "probe_script", "version_command", "with_answers"]

# Runs the script on stdin as root: directly when logged in as root, else
# through passwordless sudo. The login's own uid is printed first (as
# ``login_uid``) so later steps know whether they need sudo too.
ROOT_SHELL = 'u=$(id -u); echo "login_uid=$u"; if [ "$u" = 0 ]; then exec sh -s; else exec sudo -n sh -s; fi'

_FACTS = r"""
if [ -d /sys/bus/pci/devices ]; then pci=1; set -- /sys/bus/pci/devices/*; else pci=0; set --; fi
facts=$(awk -v root= -v pci="$pci" -v ports="$PORTS" "$AWK_FACTS" "$@" 2>/dev/null)
[ -n "$facts" ] && printf '%s\n' "$facts"
facts=$NL$facts
case $facts in *"${NL}uid="*) ;; *) say uid "$(id -u)" ;; esac
case $facts in *"${NL}user="*) ;; *) say user "$(id -un 2>/dev/null)" ;; esac
case $facts in *"${NL}listening="*) listening=" ${facts##*"${NL}listening="} " ;; *) listening=" ? " ;; esac
un=
for k in hostname kernel arch; do case $facts in *"${NL}$k="*) ;; *) un=1 ;; esac; done
if [ -n "$un" ]; then  # what /proc/sys/kernel did not tell (no awk, or an older kernel's arch)
    set -- $(uname -nrm 2>/dev/null)
    case $facts in *"${NL}hostname="*) ;; *) say hostname "${1:-}" ;; esac
    case $facts in *"${NL}kernel="*) ;; *) say kernel "${2:-}" ;; esac
    case $facts in *"${NL}arch="*) ;; *) say arch "${3:-}" ;; esac
fi
if [ "$pci" = 0 ] && command -v lspci >/dev/null 2>&1; then
    say gpu_pci "$(lspci -n -d 10de: 2>/dev/null | awk '$2 ~ /^03/' | wc -l)"
fi
if [ -d /run/systemd/system ]; then systemd=yes; else systemd=no; fi
say systemd "$systemd"
if command -v nvidia-smi >/dev/null 2>&1; then
    if command -v timeout >/dev/null 2>&1; then smi="timeout 20 nvidia-smi"; else smi=nvidia-smi; fi
    if out=$($smi -L 2>&1); then
        n=0 rest=$out$NL
        while [ -n "$rest" ]; do
            case $rest in "GPU "*) n=$((n + 1)) ;; esac
            rest=${rest#*"$NL"}
        done
        say gpu_smi "$n"
    else say gpu_smi_error "${out%%"$NL"*}"; fi
fi
"""


def version_command(spec: ExporterSpec) -> str:
    """Shell that prints the installed exporter's ``--version`` (the GPU
    exporter: run by python3 when it is a zipapp)."""
    binary = shlex.quote(spec.binary)
    return (f"{{ python3 {binary} --version 2>/dev/null || {binary} --version 2>&1; }}" if spec == GPU_SPEC
            else f"{binary} --version 2>&1")


def _version_lines(spec: ExporterSpec) -> str:
    """The installed exporter's first ``--version`` line, only when its
    binary is there: from the version file the install wrote, unless the
    binary is newer than it (replaced since), else by running it."""
    key, binary, known = f"exporter.{spec.name}", shlex.quote(spec.binary), shlex.quote(spec.version_path)
    return (f"if [ -e {binary} ]; then\n"
            f"    if [ -f {known} ] && [ ! {binary} -nt {known} ]; then IFS= read -r v < {known} || :\n"
            f"    else v=$({version_command(spec)}); fi\n"
            f'    say {key}.version "${{v%%"$NL"*}}"\n'
            f"fi\n")


def _unit_lines(specs: list[ExporterSpec]) -> str:
    """Whether each unit file is there; with systemd, its state and (for a
    unit that is there) whether it starts at boot, from one ``systemctl
    show`` for all the units present. A unit file that is not there is
    inactive, and systemctl is not asked."""
    lines = ["units="]
    for spec in specs:
        key, path = f"exporter.{spec.name}", shlex.quote(spec.unit_path)
        lines.append(f"if [ -f {path} ]; then say {key}.unit present; units=\"$units {spec.unit}\"; "
                     f"else say {key}.unit absent; fi")
    lines.append('if [ "$systemd" = yes ]; then')
    lines.append('    shown=; [ -n "$units" ] && shown=$(systemctl show -p Id -p ActiveState -p UnitFileState $units 2>/dev/null)')
    for spec in specs:
        key = f"exporter.{spec.name}"
        lines.append(f'    case "$units " in *" {spec.unit} "*) unit_state {spec.unit}; say {key}.active "$active"; '
                     f'say {key}.enabled "$enabled" ;; *) say {key}.active inactive ;; esac')
    lines.append("fi")
    return "\n".join(lines) + "\n"


def _hash_lines(paths: Iterable[str]) -> str:
    lines = []
    for path in paths:
        quoted = shlex.quote(path)
        lines.append(f'if [ -f {quoted} ]; then h=$(sha256sum {quoted}); say "sha256.{path}" "${{h%% *}}"; '
                     f'else say "sha256.{path}" absent; fi')
    return "\n".join(lines) + "\n"


# python3's version: the install needs python3 for the GPU exporter's zipapp
_PYTHON = r"""
if command -v python3 >/dev/null 2>&1; then
    v=$(python3 -V 2>&1)
    case $v in "Python 3"*) say python3 "${v#Python }" ;; esac
fi
"""


def listen_ports(specs: Iterable[ExporterSpec]) -> str:
    """``HEXPORT:NAME ...``: the ports as /proc/net/tcp writes them."""
    return " ".join(f"{spec.port:04X}:{spec.name}" for spec in specs)


def _probe_exporters_line(specs: Iterable[ExporterSpec]) -> str:
    return "probe_exporters " + " ".join(f"{spec.name}:{spec.port}" for spec in specs) + "\n"


def probe_script(specs: Iterable[ExporterSpec] = SPECS, hash_paths: Iterable[str] = (), *, http: bool = True,
                 python: bool = True) -> str:
    """The whole probe. ``http=False`` leaves out whether the exporters
    answer (no ``exporter.NAME.answering`` lines, no /proc/net/tcp read, no
    HTTP client started): for a caller that asks the ports itself.
    ``python=False`` leaves out ``python3 -V`` (no ``python3`` line), for a
    caller that does not need it."""
    specs = list(specs)
    awk = AWK_FACTS if http else AWK_MACHINE
    settings = f"AWK_FACTS={shlex.quote(awk)}\nPORTS={shlex.quote(listen_ports(specs) if http else '')}\n"
    return "".join([SHELL_PRELUDE, UNIT_STATE, settings, _FACTS, _PYTHON if python else "",
                    *map(_version_lines, specs), _unit_lines(specs),
                    _probe_exporters_line(specs) if http else "", _hash_lines(hash_paths), "exit 0\n"])


def probe_http_script(specs: Iterable[ExporterSpec] = SPECS) -> str:
    """Only whether the exporters answer, asked on the worker itself as the
    full probe asks (the LISTEN check, then curl, python3 or wget): one
    ``exporter.NAME.answering=`` line each, for ``parse_answers``."""
    specs = list(specs)
    return "".join([
        SHELL_PRELUDE, f"AWK_LISTENING={shlex.quote(AWK_LISTENING)}\nPORTS={shlex.quote(listen_ports(specs))}\n",
        'listening=$(awk -v root= -v ports="$PORTS" "$AWK_LISTENING" 2>/dev/null)\n',
        'case $listening in listening=*) listening=" ${listening#listening=} " ;; *) listening=" ? " ;; esac\n',
        _probe_exporters_line(specs), "exit 0\n",
    ])


# -- asking an exporter from here (check) ---------------------------------------------------

HTTP_TIMEOUT = 3.0  # seconds for one exporter's answer, as the script's curl -m 3
HTTP_LIMIT = 65536  # bytes read at most
HTTP_END = b"\n# TYPE "  # Prometheus text: enough has been read once this is seen


def http_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def read_reply(reader: Any, writer: Any, request: bytes, *, until: bytes, limit: int, into: bytearray) -> None:
    """Send ``request`` on an open stream pair (asyncio's or asyncssh's) and
    collect the reply ``into`` a buffer (kept if a timeout cuts it short) until
    the peer closes, ``until`` is seen or ``limit`` bytes have come. No
    half-close: some HTTP servers take it for a client gone."""
    try:
        writer.write(request)
        while len(into) < limit:
            chunk = await reader.read(min(16384, limit - len(into)))
            if not chunk:
                break
            into += chunk
            if until and into.find(until, max(0, len(into) - len(chunk) - len(until))) >= 0:
                break
    finally:
        writer.close()


def http_answer(data: bytes) -> str:
    """What an exporter's port sent back to ``GET /metrics`` (the status line,
    headers, the start of the body; possibly cut short) -> ``yes`` (HTTP 200
    with Prometheus text), ``bad`` (an HTTP answer, but an error status or no
    metrics) or ``no`` (nothing that looks like HTTP): as the script decides."""
    status = data.split(b"\n", 1)[0].split()
    if not status or not status[0].startswith(b"HTTP/"):
        return "no"
    return "yes" if status[1:2] == [b"200"] and HTTP_END in data else "bad"


def parse_answers(text: str) -> dict[str, str]:
    """``exporter.NAME.answering=WORD`` lines -> {NAME: WORD}."""
    answers = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("exporter.") and key.endswith(".answering") and value.strip():
            answers[key[len("exporter."):-len(".answering")]] = value.strip()
    return answers


def with_answers(facts: WorkerFacts, answers: Mapping[str, str]) -> WorkerFacts:
    """``facts`` with each exporter's ``answering`` as asked from elsewhere."""
    exporters = tuple(attrs.evolve(e, answering=answers[e.name]) if e.name in answers else e for e in facts.exporters)
    return attrs.evolve(facts, exporters=exporters)


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
