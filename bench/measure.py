"""Running one benchmarked command as a subprocess and measuring what it
cost: wall time; CPU time (user+sys) of its whole process tree, from
``resource.getrusage(RUSAGE_CHILDREN)`` taken before and after; the peak
RSS of its largest single process (``ru_maxrss`` from ``wait4``); and the
peak of the summed RSS of all its processes, sampled every 0.2 s.

This process makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``)
so that processes the command leaves running in the background (OpenSSH
``ControlPersist`` masters that Ansible starts) are re-parented here
instead of to init: they are counted in the tree, and once the command is
done they are stopped and reaped, so their CPU time is counted too.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

PR_SET_CHILD_SUBREAPER = 36
WORKER_SETTLE_S = 0.2
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


@attrs.frozen
class Measured:
    wall_s: float
    cpu_s: float  # user+sys of the command and everything it started
    max_rss_mb: float  # the largest single process
    tree_rss_mb: float  # peak of the sum over its processes (shared pages counted in each)
    returncode: int
    output: str = attrs.field(repr=False)  # stdout, then stderr
    worker_cpu_s: float | None = None  # the sshd side, when a farm was given
    lingering: int = 0  # background processes left behind, stopped and counted
    peak_fds: int = 0  # open file descriptors of the tree, summed, sampled


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def proc_stat(pid: int | str) -> list[str]:
    """``/proc/PID/stat``'s fields after the command name: state, ppid, ...
    (``[11:15]`` are utime, stime, cutime, cstime in clock ticks)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_s(pid: int) -> float:
    """CPU (user + system) the process has used so far."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) from /proc, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int(proc_stat(entry.name)[1])
            except OSError:
                continue
    return found


def descendants(root: int, parents: Mapping[int, int] | None = None) -> set[int]:
    parents = _parents() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _rss_mb(pids: Iterable[int]) -> float:
    pages = 0
    for pid in pids:
        try:
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return pages * PAGE_MB


def _fds(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


class _Sampler(threading.Thread):
    """Peak summed RSS of the command's tree plus any orphans adopted here
    (excluding the processes that belong to ``exclude``, e.g. the sshd farm)."""

    def __init__(self, pid: int, exclude: Sequence[int], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.exclude, self.interval = pid, set(exclude), interval
        self.peak = 0.0
        self.peak_fds = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            parents = _parents()
            own = os.getpid()
            tree = descendants(own, parents) - {own}
            for root in self.exclude:
                tree -= descendants(root, parents) | {root}
            self.peak = max(self.peak, _rss_mb(tree))
            self.peak_fds = max(self.peak_fds, _fds(tree))
            self.stopping.wait(self.interval)


def run_measured(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                 timeout: float = 600.0, exclude: Sequence[int] = (), farm: object | None = None,
                 log: Path | None = None) -> Measured:
    """Run ``argv`` to completion and measure it (see the module's docstring).
    ``exclude``: pids whose trees are not the command's (the farm's sshd)."""
    known_children = set(exclude)
    worker_before = farm.cpu_seconds() if farm is not None else None  # type: ignore[attr-defined]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out_path = log or Path(os.devnull)
    with open(out_path, "wb") as sink:
        started = time.monotonic()
        process = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        sampler = _Sampler(process.pid, exclude)
        sampler.start()
        timer = threading.Timer(timeout, _kill_group, (process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        lingering = _stop_adopted(known_children | {process.pid})
        sampler.stopping.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if farm is not None:
        time.sleep(WORKER_SETTLE_S)  # the farm reaps its finished session processes asynchronously
    worker = farm.cpu_seconds() - worker_before if farm is not None else None  # type: ignore[attr-defined]
    output = out_path.read_text(errors="replace") if log else ""
    return Measured(wall_s=wall, cpu_s=cpu, max_rss_mb=usage.ru_maxrss / 1024, tree_rss_mb=sampler.peak,
                    returncode=process.returncode, output=output, worker_cpu_s=worker, lingering=lingering,
                    peak_fds=sampler.peak_fds)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the session started for this command only
    except ProcessLookupError:
        pass


def _stop_adopted(known: set[int]) -> int:
    """Stop and reap what the command left behind and this process adopted."""
    own = os.getpid()
    adopted = [pid for pid, ppid in _parents().items() if ppid == own and pid not in known]
    ours = set()
    for pid in adopted:
        try:
            # only processes of the command's own session (it was started with a new one)
            if os.getsid(pid) == os.getsid(own):
                continue
            os.kill(pid, signal.SIGTERM)
            ours.add(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 10
    for pid in ours:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    return len(ours)
