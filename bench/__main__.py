"""The benchmark suite in one run: ``python -m bench``.

    python -m bench                  # everything (about 13 minutes on 2 cores)
    python -m bench --quick          # N=50 only, shorter API runs (about 5 minutes)
    python -m bench --only fleet     # or rollout, limits, api, exporter (comma-separated)
    python -m bench --full           # every Ansible forks setting (much longer)
    python -m bench --sizes 50,200 --no-ansible

Needs root (it starts sshd and adds the user ``dcbench``), openssh-server,
and installs on first use: ansible-core (pip, into .cache/bench-tools) and
wrk (apt-get). Prints tables; writes everything measured as JSON to
artifacts/bench/. Benchmarks print figures; nothing here passes or fails
on time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import attrs

from . import report
from .measure import become_subreaper

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("fleet", "rollout", "limits", "api", "exporter")
LIMIT_CONCURRENCY = 200  # the fd-limit probe: this many connections ...
LIMIT_NOFILE = 128  # ... under this open-files limit


def machine() -> dict:
    def first(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "unknown"

    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import aiohttp
    import asyncssh

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    from dc_overview.fleet_check import check_script

    head = first(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "asyncssh": asyncssh.__version__, "aiohttp": aiohttp.__version__,
        "openssh": first(["ssh", "-V"]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "nofile_soft": soft, "nofile_hard": hard,
        "ip_local_port_range": Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split(),
        "somaxconn": int(Path("/proc/sys/net/core/somaxconn").read_text()),
        "git": head + (" with uncommitted changes" if dirty else ""),
        "probe_script_sha256": hashlib.sha256(check_script().encode()).hexdigest(),
    }


def compile_bytecode() -> list[str]:
    """Byte-code for dc-overview's own modules and the bench's helpers, as
    ``pip install`` writes it for an installed package (and the Dockerfile
    for the image). A checkout installed with ``pip install -e`` has none,
    and where PYTHONDONTWRITEBYTECODE is set nothing writes it on import:
    every command would compile every module it imports, each start."""
    import dc_overview
    import dc_overview.adapters
    import dc_overview.frontends

    folders = sorted({str(Path(module.__file__).parent) for module in (dc_overview, dc_overview.adapters,
                                                                         dc_overview.frontends)} | {str(REPO / "bench")})
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL)
    return folders


def run_fleet(args: argparse.Namespace, workdir: Path, results: dict, sections: list[str]) -> None:
    """The fleet check and the rollout: one sshd farm for both."""
    from .ansible_env import AnsibleUnavailable, ansible_version, ensure_ansible
    from .fleet import FleetBench, max_startups_limit, plan_for
    from .sshd_farm import MAX_SESSIONS, MAX_STARTUPS, SshdFarm

    plan = plan_for(quick=args.quick, full=args.full, sizes=args.sizes)
    if "fleet" not in sections:
        plan = attrs.evolve(plan, sizes=())
    if "rollout" not in sections:
        plan = attrs.evolve(plan, rollout_sizes=())
    ansible_bin = None
    if not args.no_ansible:
        try:
            ansible_bin = ensure_ansible()
            results["machine"]["ansible"] = ansible_version(ansible_bin)
        except AnsibleUnavailable as exc:
            print(f"Ansible left out: {exc}")
    limit_n = 50 if args.quick else LIMIT_CONCURRENCY
    farm = SshdFarm(workdir / "farm", max(plan.sizes + plan.rollout_sizes + ((limit_n,) if "limits" in sections else ())))
    started = time.monotonic()
    with farm:
        print(f"sshd farm: {len(farm.addresses)} workers on port {farm.port}, {len(farm.listeners)} sshd processes "
              f"(MaxStartups {MAX_STARTUPS}, MaxSessions {MAX_SESSIONS}), up in {time.monotonic() - started:.1f} s")
        bench = FleetBench(workdir / "fleet", farm, ansible_bin, plan)
        try:
            bench.run_checks()
            bench.run_rollouts()
            if "limits" in sections:
                bench.fd_limit(limit_n, limit_n, LIMIT_NOFILE if limit_n > 50 else 40)
        finally:
            results["fleet"] = {"rows": bench.rows, "plan": attrs.asdict(plan), "facts": bench.facts, "farm": {
                "workers": len(farm.addresses), "sshd_processes": len(farm.listeners),
                "max_startups": MAX_STARTUPS, "max_sessions": MAX_SESSIONS}}
    if "limits" in sections:
        results["fleet"]["rows"] += max_startups_limit(workdir, ansible_bin, limit_n, limit_n)


def run_api(args: argparse.Namespace, workdir: Path, results: dict) -> None:
    from .api import api_bench

    results["api"] = api_bench(workdir / "api", servers=args.api_servers, connections=50,
                               duration=5.0 if args.quick else args.api_duration, rounds=args.api_rounds)


def run_exporter(args: argparse.Namespace, workdir: Path, results: dict) -> None:
    from .exporter_section import exporter_bench

    results["exporter"] = exporter_bench(gpus=8, scrapes=500 if args.quick else 2000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=50 only, 5 s API runs")
    parser.add_argument("--full", action="store_true",
                        help="every Ansible forks setting at every size (much longer)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run: fleet,rollout,limits,api,exporter")
    parser.add_argument("--sizes", help="fleet sizes, e.g. 50,200,500")
    parser.add_argument("--no-ansible", action="store_true", help="leave Ansible out")
    parser.add_argument("--api-servers", type=int, default=5000)
    parser.add_argument("--api-duration", type=float, default=8.0, help="seconds of load per endpoint")
    parser.add_argument("--api-rounds", type=int, default=3,
                        help="rounds of targets.json, the hello world and the same bytes ready-made, in turn "
                             "(the goal: the median of targets.json's share of the hello world)")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs of every run)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if os.geteuid() != 0 and {"fleet", "rollout", "limits"} & set(sections):
        parser.error("the fleet benchmark starts sshd and adds a user: run it as root")
    become_subreaper()
    os.chdir(REPO)  # the bench's helper modules run as `python -m bench.x` from here
    results: dict = {"machine": machine(), "command": " ".join(["python -m bench", *(argv or sys.argv[1:])])}
    results["machine"]["bytecode_compiled"] = compile_bytecode()
    print(f"dc-overview benchmarks, {results['machine']['date']}, {results['machine']['cpus']} CPUs "
          f"({results['machine']['cpu_model']}), load {results['machine']['load_average_at_start']}")
    workdir = Path(tempfile.mkdtemp(prefix="dc-overview-bench-"))
    os.chmod(workdir, 0o755)  # the sshd farm reads its files as the bench user
    started = time.monotonic()
    try:
        if {"fleet", "rollout", "limits"} & set(sections):
            run_fleet(args, workdir, results, sections)
        if "api" in sections:
            run_api(args, workdir, results)
        if "exporter" in sections:
            run_exporter(args, workdir, results)
    finally:
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        text = json.dumps(results, indent=2) + "\n"
        (args.out / f"bench-{stamp}.json").write_text(text)
        (args.out / "latest.json").write_text(text)
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report.render(results))
    print(f"\nresults: {args.out / f'bench-{stamp}.json'} ({results['elapsed_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
