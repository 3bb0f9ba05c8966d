"""Fleet fan-out, side by side on the same machine and the same workers:
``dc-overview check --all`` (the real CLI, as a subprocess) against
``ansible -m shell`` and ``-m raw``, and the floor, bare asyncssh; then a
rollout (a 20 MB binary and a unit file) against Ansible's ``copy``.

Every run is one subprocess measured by ``bench.measure`` (wall, CPU of
its process tree, peak RSS) plus the CPU the workers' sshd side used,
which here runs on the same cores. A run whose hosts did not all succeed
is reported with its count, never silently.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from .ansible_env import AnsibleSetup, adhoc_statuses, close_connections, count_adhoc_ok, count_recap_ok
from .measure import Measured, run_measured
from .sshd_farm import SshdFarm

ANSIBLE_COMMAND = "nvidia-smi -L || true; uname -r"
BINARY_MB = 20
ROLLOUT_DIR = "/tmp/dcbench-ansible"


@attrs.frozen
class FleetPlan:
    """Which runs to make. Ansible's forks: 5 is its default; the others
    look for its best (the full plan tries 5, 50, 200 and N everywhere)."""

    sizes: tuple[int, ...] = (50, 200, 500)
    concurrency: int = 50  # dc-overview's ssh_concurrency (its default)
    wide_concurrency: int = 200  # also measured at this setting, for sizes above the default
    raw_forks: dict = attrs.field(factory=lambda: {50: (5, 50), 200: (50, 200), 500: (200,)})
    shell_forks: dict = attrs.field(factory=lambda: {50: (5, 50), 200: (200,)})
    probe_forks: dict = attrs.field(factory=lambda: {50: 50, 200: 200})  # raw with our probe script
    rollout_sizes: tuple[int, ...] = (50,)
    rollout_forks: tuple[int, ...] = (50,)
    full: bool = False  # also the floors that repeat what other rows show
    repeats: int = 3  # dc-overview and the two floors at the default concurrency, taken in turn


def plan_for(*, quick: bool = False, full: bool = False, sizes: str | None = None) -> FleetPlan:
    plan = FleetPlan()
    if quick:
        plan = attrs.evolve(plan, sizes=(50,), raw_forks={50: (5, 50)}, shell_forks={50: (50,)})
    if full:
        every = {n: tuple(sorted({5, 50, 200, n})) for n in (50, 200, 500)}
        plan = attrs.evolve(plan, raw_forks=every, shell_forks=every, rollout_forks=(5, 50),
                            probe_forks={50: 50, 200: 200, 500: 200}, full=True)
    if sizes:
        chosen = tuple(int(n) for n in sizes.split(","))
        forks = {n: tuple(sorted({5, 50, min(200, n), n})) for n in chosen}
        raw = {n: plan.raw_forks.get(n, forks[n]) for n in chosen}
        shell = {n: plan.shell_forks.get(n, (min(200, n),)) for n in chosen}
        probe = {n: plan.probe_forks.get(n, min(200, n)) for n in chosen}
        plan = attrs.evolve(plan, sizes=chosen, raw_forks=raw, shell_forks=shell, probe_forks=probe,
                            rollout_sizes=chosen[:1])
    return plan


def row(section: str, n: int, tool: str, variant: str, concurrency: int, measured: Measured, ok: int,
        note: str = "") -> dict:
    return {
        "section": section, "hosts": n, "tool": tool, "variant": variant, "concurrency": concurrency,
        "wall_s": round(measured.wall_s, 3), "cpu_s": round(measured.cpu_s, 3),
        "worker_cpu_s": None if measured.worker_cpu_s is None else round(measured.worker_cpu_s, 3),
        "max_rss_mb": round(measured.max_rss_mb, 1), "tree_rss_mb": round(measured.tree_rss_mb, 1),
        "ok": ok, "returncode": measured.returncode, "lingering": measured.lingering, "peak_fds": measured.peak_fds,
        "note": note,
    }


def dc_overview_command() -> list[str]:
    found = shutil.which("dc-overview")
    return [found] if found else [sys.executable, "-m", "dc_overview"]


def check_cli_available() -> bool:
    done = subprocess.run([*dc_overview_command(), "check", "--help"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and "--all" in done.stdout


def prepare_data_dir(path: Path, farm: SshdFarm, n: int, concurrency: int) -> None:
    """An inventory of the first ``n`` workers with the farm's key, no host keys pinned."""
    import dc_overview

    shutil.rmtree(path, ignore_errors=True)
    fleet = dc_overview.open(path)
    try:
        fleet.add_key("bench", farm.client_key)
        lines = [f"{name},{address},{farm.user},{farm.port},bench"
                 for name, address in zip(host_names(n), farm.addresses[:n])]
        fleet.import_servers("\n".join(lines), source="bench")
        fleet.set_setting("ssh_concurrency", concurrency)
    finally:
        fleet.close()


def set_concurrency(path: Path, concurrency: int) -> None:
    import dc_overview

    fleet = dc_overview.open(path)
    try:
        fleet.set_setting("ssh_concurrency", concurrency)
    finally:
        fleet.close()


def host_names(n: int) -> list[str]:
    return [f"w{i:04d}" for i in range(1, n + 1)]


class FleetBench:
    def __init__(self, workdir: Path, farm: SshdFarm, ansible_bin: Path | None, plan: FleetPlan,
                 say: Callable[[str], None] = print) -> None:
        self.dir = workdir
        self.farm = farm
        self.ansible_bin = ansible_bin
        self.plan = plan
        self.say = say
        self.rows: list[dict] = []
        self.facts: dict = {}
        self.section = "check"
        if not check_cli_available():
            raise RuntimeError("this dc-overview has no `check --all` command to measure")
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._run = 0
        self._last_command = ""

    # -- helpers ------------------------------------------------------------------------------

    def _measure(self, label: str, argv: Sequence[str], **kwargs: object) -> Measured:
        self._run += 1
        log = self.logs / f"{self._run:03d}-{label}.log"
        self._last_command = " ".join(shlex.quote(a if len(a) <= 200 else a[:100] + "...") for a in argv)
        measured = run_measured(argv, exclude=self.farm.pids, farm=self.farm, log=log,
                                **kwargs)  # type: ignore[arg-type]
        return measured

    def _add(self, entry: dict) -> None:
        entry.setdefault("command", self._last_command)
        self.rows.append(entry)
        flag = "" if entry["ok"] == entry["hosts"] else f"  ({entry['hosts'] - entry['ok']} FAILED)"
        self.say(f"  {entry['section']:<7} N={entry['hosts']:<4} {entry['tool']:<30} {entry['variant']:<34} "
                 f"c={entry['concurrency']:<4} {entry['wall_s']:7.2f} s wall {entry['cpu_s']:7.2f} s CPU "
                 f"{entry['max_rss_mb']:6.0f} MB{flag}")

    def _hosts_file(self, n: int) -> Path:
        path = self.dir / f"hosts-{n}.json"
        path.write_text(json.dumps({"addresses": self.farm.addresses[:n], "port": self.farm.port,
                                    "user": self.farm.user, "key": str(self.farm.client_key),
                                    "host_key": self.farm.host_public_key()}))
        return path

    def _ansible(self, n: int) -> AnsibleSetup:
        assert self.ansible_bin is not None
        return AnsibleSetup(self.dir / f"ansible-{n}", self.ansible_bin, names=host_names(n),
                            addresses=self.farm.addresses[:n], port=self.farm.port, user=self.farm.user,
                            key=self.farm.client_key, known_hosts=self.farm.known_hosts_lines()[:n])

    # -- fleet check ----------------------------------------------------------------------------

    def dc_check(self, data: Path, n: int, concurrency: int, variant: str, *, nofile: int | None = None) -> dict:
        argv = [*dc_overview_command(), "--data-dir", str(data), "check", "--all", "--json"]
        if nofile:  # a lower open-files limit for this run only
            argv = ["sh", "-c", f'ulimit -n {nofile} && exec "$@"', "sh", *argv]
        tool = "dc-overview check --all"
        measured = self._measure(f"dc-check-{n}", argv)
        results = _json_results(measured.output)
        ok = sum(1 for r in results if r.get("ok"))
        words = Counter(str(r.get("result")) for r in results)
        retried = sum(1 for r in results if (r.get("attempts") or 1) > 1)
        note = ", ".join(f"{count} {word}" for word, count in words.most_common())
        if retried:
            note += f"; {retried} needed more than one login attempt"
        if not results:
            crashed = "Traceback (most recent call last)" in measured.output
            note = ("crashed with a traceback: " if crashed else "") + _last_line(measured.output)
        entry = row(self.section, n, tool, variant, concurrency, measured, ok, note)
        self._add(entry)
        return entry

    def startup(self, data: Path, n: int) -> dict:
        """What any dc-overview command costs before it does anything: start, imports, open the inventory."""
        measured = self._measure("dc-startup", [*dc_overview_command(), "--data-dir", str(data), "settings", "list"])
        entry = row(self.section, n, "dc-overview settings list", "start-up only, no SSH", 1, measured,
                    n if measured.returncode == 0 else 0)
        self._add(entry)
        return entry

    def bare(self, n: int, concurrency: int, *, probe: bool, run: str = "") -> dict:
        argv = [sys.executable, "-m", "bench.bare_ssh", str(self._hosts_file(n)), "--concurrency", str(concurrency)]
        if probe:
            from dc_overview.fleet_check import check_script

            script = self.dir / "probe.sh"
            script.write_text(check_script())
            argv += ["--command", "sh -s", "--stdin", str(script)]
            variant = "floor: dc-overview's probe script" + run
        else:
            argv += ["--command", ANSIBLE_COMMAND]
            variant = "floor: the Ansible command" + run
        measured = self._measure(f"bare-{n}", argv, cwd=str(Path(__file__).resolve().parent.parent))
        ok = _count_bare_ok(measured.output)
        found = _last_json(measured.output)
        errors = found.get("errors") if isinstance(found, dict) else None
        entry = row(self.section, n, "bare asyncssh", variant, concurrency, measured, ok,
                    ", ".join(f"{count} {word}" for word, count in errors.items()) if errors else "")
        self._add(entry)
        return entry

    def ansible_adhoc(self, n: int, module: str, forks: int, *, probe: bool = False) -> dict:
        setup = self._ansible(n)
        run_dir = self.dir / f"ansible-run-{self._run + 1}"
        command, variant = ANSIBLE_COMMAND, f"forks {forks}"
        if probe:  # the same remote work as dc-overview's check; base64 keeps Ansible's argument parser out of it
            from dc_overview.fleet_check import check_script

            command = f"echo {base64.b64encode(check_script().encode()).decode()} | base64 -d | sh"
            variant = f"forks {forks}, dc-overview's probe script"
        measured = self._measure(f"ansible-{module}-{n}-f{forks}", setup.adhoc(module, command, forks),
                                 env=setup.env(run_dir), timeout=900)
        close_connections(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
        statuses = adhoc_statuses(measured.output)
        entry = row(self.section, n, f"ansible -m {module}", variant, forks, measured, count_adhoc_ok(measured.output),
                    ", ".join(f"{count} {word}" for word, count in statuses.most_common()))
        self._add(entry)
        return entry

    def check_size(self, n: int) -> None:
        plan = self.plan
        data = self.dir / f"data-{n}"
        prepare_data_dir(data, self.farm, n, plan.concurrency)
        if n == plan.sizes[0]:
            self.startup(data, n)
        self.dc_check(data, n, plan.concurrency, "first run: pins host keys")
        # the ratios the goals are about: each run in turn, several times (the report takes medians)
        for i in range(plan.repeats):
            run = f" (run {i + 1} of {plan.repeats})" if plan.repeats > 1 else ""
            self.dc_check(data, n, plan.concurrency, "host keys pinned" + run)
            self.bare(n, plan.concurrency, probe=False, run=run)
            self.bare(n, plan.concurrency, probe=True, run=run)
        if n > plan.concurrency:
            wide = min(n, plan.wide_concurrency)
            set_concurrency(data, wide)
            self.dc_check(data, n, wide, "host keys pinned")
            if n <= wide or plan.full:
                self.bare(n, wide, probe=False)
            self.bare(n, wide, probe=True)
            set_concurrency(data, plan.concurrency)
        if self.ansible_bin is None:
            return
        for forks in plan.raw_forks.get(n, ()):
            self.ansible_adhoc(n, "raw", forks)
        for forks in plan.shell_forks.get(n, ()):
            self.ansible_adhoc(n, "shell", forks)
        if plan.probe_forks.get(n):
            self.ansible_adhoc(n, "raw", plan.probe_forks[n], probe=True)

    # -- rollout ----------------------------------------------------------------------------------

    def rollout_size(self, n: int) -> None:
        from dc_overview.exporter_units import node_exporter_unit

        files = self.dir / "rollout"
        files.mkdir(exist_ok=True)
        binary = files / "node_exporter"
        if not binary.exists():
            with binary.open("wb") as handle:  # incompressible, like a real binary mostly is
                for _ in range(BINARY_MB):
                    handle.write(_random_mb())
        unit = files / "dc-node-exporter.service"
        unit.write_text(node_exporter_unit())
        data = self.dir / f"data-{n}"
        if not data.exists():
            prepare_data_dir(data, self.farm, n, self.plan.concurrency)
            self.dc_check(data, n, self.plan.concurrency, "first run: pins host keys")
        measured = self._measure(f"push-{n}", [sys.executable, "-m", "bench.push", str(data), str(binary), str(unit)],
                                 cwd=str(Path(__file__).resolve().parent.parent))
        result = _last_json(measured.output) or {}
        self._add(row("rollout", n, "dc-overview SFTP push", "mktemp + put 2 files (no systemctl)",
                      self.plan.concurrency, measured, int(result.get("ok", 0))))
        for stage in result.get("staged", []):
            if stage.startswith("/tmp/dc-overview."):
                shutil.rmtree(stage, ignore_errors=True)
        if self.ansible_bin is None:
            return
        setup = self._ansible(n)
        playbook = setup.dir / "rollout.yml"
        playbook.write_text(json.dumps([{
            "hosts": "workers", "gather_facts": False,
            "tasks": [
                {"name": "staging folder",
                 "file": {"path": ROLLOUT_DIR + "/{{ inventory_hostname }}", "state": "directory", "mode": "0700"}},
                {"name": "binary", "copy": {"src": str(binary), "mode": "0755",
                                            "dest": ROLLOUT_DIR + "/{{ inventory_hostname }}/node_exporter"}},
                {"name": "unit", "copy": {"src": str(unit), "mode": "0644",
                                          "dest": ROLLOUT_DIR + "/{{ inventory_hostname }}/dc-node-exporter.service"}},
            ],
        }], indent=1))
        for forks in self.plan.rollout_forks:
            shutil.rmtree(ROLLOUT_DIR, ignore_errors=True)
            run_dir = self.dir / f"ansible-run-{self._run + 1}"
            measured = self._measure(f"ansible-copy-{n}-f{forks}", setup.playbook(playbook, forks),
                                     env=setup.env(run_dir), timeout=900)
            close_connections(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
            self._add(row("rollout", n, "ansible-playbook copy", f"forks {forks}: mkdir + copy 2 files", forks,
                          measured, count_recap_ok(measured.output)))
        shutil.rmtree(ROLLOUT_DIR, ignore_errors=True)

    def run_checks(self) -> list[dict]:
        for n in self.plan.sizes:
            self.say(f"fleet check, {n} workers")
            before = time_wait_sockets()
            self.check_size(n)
            self.facts[f"time_wait_after_{n}"] = {"before": before, "after": time_wait_sockets()}
        return self.rows

    def fd_limit(self, n: int, concurrency: int, nofile: int) -> dict | None:
        """The check with fewer open files allowed than it needs at this concurrency."""
        data = self.dir / f"data-{n}"
        self.say(f"limits: dc-overview check at concurrency {concurrency} under `ulimit -n {nofile}`")
        self.section = "limits"
        if not data.exists():
            prepare_data_dir(data, self.farm, n, concurrency)
            self.dc_check(data, n, concurrency, "first run: pins host keys")
        set_concurrency(data, concurrency)
        try:
            return self.dc_check(data, n, concurrency, f"ulimit -n {nofile}", nofile=nofile)
        finally:
            self.section = "check"
            set_concurrency(data, self.plan.concurrency)

    def run_rollouts(self) -> list[dict]:
        for n in self.plan.rollout_sizes:
            self.say(f"rollout, {n} workers, {BINARY_MB} MB binary + unit file")
            self.rollout_size(n)
        return self.rows


def _random_mb() -> bytes:
    import os

    return os.urandom(1024 * 1024)


def _last_json(output: str) -> object:
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def _count_bare_ok(output: str) -> int:
    found = _last_json(output)
    return int(found.get("ok", 0)) if isinstance(found, dict) else 0


def _json_results(output: str) -> list[dict]:
    """The check's --json output (a list of results), found in the log."""
    start = output.find("[")
    while start != -1:
        try:
            results, _ = json.JSONDecoder().raw_decode(output[start:])
            if isinstance(results, list) and all(isinstance(r, dict) for r in results):
                return results
        except ValueError:
            pass
        start = output.find("[", start + 1)
    return []


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def max_startups_limit(workdir: Path, ansible_bin: Path | None, n: int, concurrency: int,
                       say: Callable[[str], None] = print) -> list[dict]:
    """Workers behind sshd's default ``MaxStartups 10:30:100`` (16 of them per
    sshd here, as behind a bastion or NAT'd ports): at concurrency
    ``concurrency``, more than 10 logins at once reach one sshd, which then
    drops some. dc-overview retries dropped logins; the others do not."""
    from .sshd_farm import SshdFarm

    say(f"limits: {n} workers behind sshd's default MaxStartups 10:30:100, concurrency {concurrency}")
    farm = SshdFarm(workdir / "farm-default", n, max_startups="10:30:100")
    with farm:
        bench = FleetBench(workdir / "limits", farm, ansible_bin, FleetPlan(sizes=(n,)), say)
        bench.section = "limits"
        data = bench.dir / f"data-{n}"
        prepare_data_dir(data, farm, n, concurrency)
        bench.dc_check(data, n, concurrency, "MaxStartups 10:30:100, first run: pins host keys")
        bench.bare(n, concurrency, probe=False)
        if ansible_bin is not None:
            bench.ansible_adhoc(n, "raw", concurrency)
        for entry in bench.rows:
            if entry["tool"] == "bare asyncssh":
                entry["variant"] = "MaxStartups 10:30:100, no retries"
            elif entry["tool"].startswith("ansible"):
                entry["variant"] = f"MaxStartups 10:30:100, forks {concurrency}"
        return bench.rows


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT on this machine (state 06 in /proc/net/tcp*)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        count += sum(1 for line in lines if line.split()[3] == "06")
    return count
