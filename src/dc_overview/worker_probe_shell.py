"""The shell and awk text of the worker probe (``worker_probe`` puts the
script together): the helpers every script sent to a worker starts with
(``SHELL_PRELUDE``: ``say``, the HTTP check of an exporter's port), the awk
program that reads the facts from /proc, /etc and /sys, and the reading of
``systemctl show``. POSIX sh and POSIX awk (mawk, gawk, busybox) only.
"""

from __future__ import annotations

import shlex

# python3 -S with the C socket module alone (no urllib, no site): a raw
# HTTP/1.0 GET per NAME:PORT argument, one "exporter.NAME.answering=" line each.
_PY_HTTP = """\
import _socket, sys, time
for arg in sys.argv[1:]:
    name, port = arg.rsplit(":", 1)
    data, deadline = b"", time.monotonic() + 3
    try:
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(("127.0.0.1", int(port)))
        s.sendall(b"GET /metrics HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
        while len(data) < 65536 and b"\\n# TYPE " not in data and time.monotonic() < deadline:
            chunk = s.recv(16384)
            if not chunk:
                break
            data += chunk
        s.close()
        status = data.split(b"\\n", 1)[0].split()
        metrics = status[1:2] == [b"200"] and b"\\n# TYPE " in data
        answer = "yes" if metrics else ("bad" if status[:1] and status[0].startswith(b"HTTP/") else "no")
    except (OSError, ValueError):
        answer = "no"
    print("exporter.%s.answering=%s" % (name, answer))
"""

_PRELUDE = r"""
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
NL='
'
# say KEY VALUE: one KEY=VALUE line, the value's newlines made spaces
say() {
    case $2 in
        *"$NL"*)
            _say_rest=$2 _say_one=
            while :; do
                case $_say_rest in
                    *"$NL"*) _say_one="$_say_one${_say_rest%%"$NL"*} "; _say_rest=${_say_rest#*"$NL"} ;;
                    *) _say_one="$_say_one$_say_rest"; break ;;
                esac
            done
            printf '%s=%s\n' "$1" "$_say_one" ;;
        *) printf '%s=%s\n' "$1" "$2" ;;
    esac
}
# http_verdict [KEY]: reads an HTTP response (status line, headers, body, as
# curl -i or wget -S print it) and prints yes (200 with Prometheus text), bad
# (answers, but an error status or no metrics) or no (nothing answered), as
# KEY=VERDICT when a key is given. Stops reading at the first "# TYPE ".
http_verdict() {
    _hv=no
    if IFS=' ' read -r _hv_proto _hv_code _hv_rest; then
        case $_hv_proto in
            HTTP/*)
                _hv=bad
                case $_hv_code in
                    200*)
                        _hv_n=0
                        while [ "$_hv_n" -lt 400 ] && IFS= read -r _hv_line; do
                            case $_hv_line in "# TYPE "*) _hv=yes; break ;; esac
                            _hv_n=$((_hv_n + 1))
                        done ;;
                esac ;;
        esac
    fi
    if [ -n "${1:-}" ]; then printf '%s=%s\n' "$1" "$_hv"; else echo "$_hv"; fi
}
# The HTTP clients, each printing what http_verdict says: http_curl PORT
# [KEY], http_wget PORT [KEY] (GNU or busybox: no -T, busybox's may crash
# on it; `timeout` instead), http_python NAME:PORT ... (KEY lines, one start).
http_curl() { curl -s -i -m 3 "http://127.0.0.1:$1/metrics" 2>/dev/null | http_verdict "${2:-}"; }
http_wget() {
    if command -v timeout >/dev/null 2>&1; then _hw=timeout; else _hw=; fi
    ${_hw:+timeout 5} wget -q -S -t 1 -O - "http://127.0.0.1:$1/metrics" 2>&1 | http_verdict "${2:-}"
}
http_python() { python3 -E -S -c "$PY_HTTP" "$@" 2>/dev/null; }
# probe_http PORT: does GET /metrics on 127.0.0.1:PORT give Prometheus
# text? yes, bad, no, or unknown (no curl, python3 or wget to ask with).
probe_http() {
    if command -v curl >/dev/null 2>&1; then http_curl "$1"
    elif command -v python3 >/dev/null 2>&1; then _ph=$(http_python "x:$1"); echo "${_ph#*=}"
    elif command -v wget >/dev/null 2>&1; then http_wget "$1"
    else echo unknown; fi
}
# probe_exporters NAME:PORT ...: one "exporter.NAME.answering=" line each.
# A port nothing listens on (as $listening says: " NAME ... ", " ? " when
# unknown) is "no" without asking; the others are asked with curl, else
# python3 (one start for all), else wget.
probe_exporters() {
    _pe_open=
    for _pe in "$@"; do
        case ${listening:- ? } in
            *" ${_pe%%:*} "*|*" ? "*) _pe_open="$_pe_open $_pe" ;;
            *) say "exporter.${_pe%%:*}.answering" no ;;
        esac
    done
    [ -n "$_pe_open" ] || return 0
    if command -v curl >/dev/null 2>&1; then
        for _pe in $_pe_open; do http_curl "${_pe##*:}" "exporter.${_pe%%:*}.answering"; done
    elif command -v python3 >/dev/null 2>&1; then
        http_python $_pe_open
    elif command -v wget >/dev/null 2>&1; then
        for _pe in $_pe_open; do http_wget "${_pe##*:}" "exporter.${_pe%%:*}.answering"; done
    else
        for _pe in $_pe_open; do say "exporter.${_pe%%:*}.answering" unknown; done
    fi
}
"""
SHELL_PRELUDE = f"\nPY_HTTP={shlex.quote(_PY_HTTP)}" + _PRELUDE

# What awk reads, each with getline (a file that is missing or unreadable is
# skipped, never fatal) and every path under ROOT (empty on a worker; a test
# folder in the tests). PCI device folders come as arguments. Three parts,
# each a BEGIN block: put (the output), the machine's facts, and the LISTEN
# check: PORTS is "HEXPORT:NAME ...", and the last line names the exporters
# whose port something listens on ("?" when /proc/net/tcp* was unreadable).
_AWK_PUT = r"""
function put(key, value) { printf "%s=%s\n", key, value }
"""

_AWK_MACHINE = r"""
function count_cpus(list,    parts, range, n, i, total) {
    n = split(list, parts, ",")
    for (i = 1; i <= n; i++) {
        if (split(parts[i], range, "-") == 2) total += range[2] - range[1] + 1
        else if (parts[i] != "") total++
    }
    return total
}
function unquote(value,    q, i, c, out) {
    q = substr(value, 1, 1)
    if ((q != "\"" && q != "'") || length(value) < 2 || substr(value, length(value)) != q) return value
    value = substr(value, 2, length(value) - 2)
    if (q == "'") return value
    for (i = 1; i <= length(value); i++) {
        c = substr(value, i, 1)
        if (c == "\\" && i < length(value) && index("\"\\$`", substr(value, i + 1, 1))) c = substr(value, ++i, 1)
        out = out c
    }
    return out
}
function first_line(file, key,    line) {
    if ((getline line < file) > 0 && line != "") put(key, line)
    close(file)
}
BEGIN {
    # uname -n, -r and -m without starting uname (kernel.arch is there since Linux 6.1)
    first_line(root "/proc/sys/kernel/hostname", "hostname")
    first_line(root "/proc/sys/kernel/osrelease", "kernel")
    first_line(root "/proc/sys/kernel/arch", "arch")
    uid = ""; cpus = 0
    file = root "/proc/self/status"
    while ((getline line < file) > 0) {
        if (line ~ /^Uid:/) { split(line, f, " "); uid = f[3] }
        else if (line ~ /^Cpus_allowed_list:/) { split(line, f, " "); cpus = count_cpus(f[2]) }
    }
    close(file)
    if (uid != "") {
        put("uid", uid)
        file = root "/etc/passwd"
        while ((getline line < file) > 0)
            if (split(line, f, ":") >= 3 && f[3] "" == uid "") { put("user", f[1]); break }
        close(file)
    }
    file = root "/proc/cpuinfo"; n = 0; model = ""
    while ((getline line < file) > 0) {
        if (line ~ /^processor[ \t]*:/) n++
        else if (model == "" && line ~ /^model name[ \t]*: /) {
            model = line; sub(/^model name[ \t]*: /, "", model)
            if (cpus) break
        }
    }
    close(file)
    if (!cpus) cpus = n
    if (cpus) put("cpus", cpus)
    if (model != "") put("cpu_model", model)
    file = root "/proc/meminfo"
    while ((getline line < file) > 0)
        if (line ~ /^MemTotal:/) { split(line, f, " "); put("mem_kb", f[2]); break }
    close(file)
    file = root "/etc/os-release"; seen = 0; pretty = ""; name = ""
    while ((getline line < file) > 0) {
        seen = 1
        if (line ~ /^PRETTY_NAME=/) pretty = unquote(substr(line, 13))
        else if (line ~ /^NAME=/) name = unquote(substr(line, 6))
    }
    close(file)
    if (seen) put("os", pretty != "" ? pretty : name)
    if (pci) {
        n = 0
        for (i = 1; i < ARGC; i++) {
            vendor = ""; class = ""
            file = ARGV[i] "/vendor"; getline vendor < file; close(file)
            if (vendor != "0x10de") continue
            file = ARGV[i] "/class"; getline class < file; close(file)
            if (class ~ /^0x03/) n++
        }
        put("gpu_pci", n)
    }
}
"""

_AWK_LISTENING = r"""
function listening(file,    line, f, port) {
    if ((getline line < file) <= 0) return 0
    while ((getline line < file) > 0) {
        split(line, f, " ")
        port = substr(f[2], index(f[2], ":") + 1)
        if (f[4] == "0A" && (port in want)) heard[want[port]] = 1
    }
    close(file)
    return 1
}
BEGIN {
    split(ports, f, " ")
    for (i in f) { split(f[i], pair, ":"); want[pair[1]] = pair[2] }
    # each file costs the kernel a walk of its whole hash table: tcp only when tcp6 left a port unheard
    read = listening(root "/proc/net/tcp6")
    for (port in want) if (!(want[port] in heard)) { read += listening(root "/proc/net/tcp"); break }
    heard_list = ""
    for (exporter in heard) heard_list = heard_list " " exporter
    put("listening", read ? substr(heard_list, 2) : "?")
}
"""

AWK_FACTS = _AWK_PUT + _AWK_MACHINE + _AWK_LISTENING  # the facts and the LISTEN check (installs)
AWK_MACHINE = _AWK_PUT + _AWK_MACHINE  # the facts alone (check: it asks the ports over SSH)
AWK_LISTENING = _AWK_PUT + _AWK_LISTENING  # the LISTEN check alone (check, where SSH cannot forward)


# unit_state UNIT: sets active and enabled from $shown, the answer of
# `systemctl show -p Id -p ActiveState -p UnitFileState` (Id comes first).
UNIT_STATE = r"""
unit_state() {
    active= enabled= id= ifs=$IFS
    IFS=$NL
    for line in $shown; do
        case $line in
            Id=*) id=${line#Id=} ;;
            ActiveState=*) [ "$id" = "$1" ] && active=${line#*=} ;;
            UnitFileState=*) [ "$id" = "$1" ] && enabled=${line#*=} ;;
        esac
    done
    IFS=$ifs
}
"""
