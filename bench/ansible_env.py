"""Ansible for the comparison: ``ansible-core`` from PyPI in the bench's own
virtual environment (``.cache/bench-ansible`` in the repository, made on
first use), so the project's environment never gets it. Each run gets its
own ``ansible.cfg``, inventory and pinned known_hosts file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from .measure import proc_stat

ANSIBLE_REQUIREMENT = "ansible-core"
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "bench-tools"


class AnsibleUnavailable(RuntimeError):
    pass


def ensure_ansible(venv: Path = VENV) -> Path:
    """The venv's bin folder, with ansible-core installed (pip, on demand)."""
    bin_dir = venv / "bin"
    if (bin_dir / "ansible").exists() and (bin_dir / "ansible-playbook").exists():
        return bin_dir
    print(f"installing {ANSIBLE_REQUIREMENT} into {venv} (once) ...", flush=True)
    try:
        if not (bin_dir / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", ANSIBLE_REQUIREMENT],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise AnsibleUnavailable(f"cannot install {ANSIBLE_REQUIREMENT}: {(exc.stderr or '')[-500:]}") from None
    return bin_dir


def ansible_version(bin_dir: Path) -> str:
    done = subprocess.run([str(bin_dir / "ansible"), "--version"], capture_output=True, text=True, check=False)
    first = done.stdout.splitlines()[0] if done.stdout else "ansible (unknown version)"
    return first.strip()


class AnsibleSetup:
    """Inventory, config and known_hosts for one set of workers."""

    def __init__(self, workdir: Path, bin_dir: Path, *, names: Sequence[str], addresses: Sequence[str], port: int,
                 user: str, key: Path, known_hosts: Sequence[str]) -> None:
        self.dir = Path(workdir)
        self.bin_dir = bin_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("\n".join(known_hosts) + "\n")
        self.inventory = self.dir / "hosts.ini"
        lines = ["[workers]"]
        lines += [f"{name} ansible_host={address}" for name, address in zip(names, addresses)]
        ssh_args = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
        lines += [
            "", "[workers:vars]",
            f"ansible_port={port}",
            f"ansible_user={user}",
            f"ansible_ssh_private_key_file={key}",
            "ansible_python_interpreter=/usr/bin/python3",  # no interpreter discovery round trip
            f"ansible_ssh_common_args='{ssh_args}'",
        ]
        self.inventory.write_text("\n".join(lines) + "\n")
        self.config = self.dir / "ansible.cfg"
        self.config.write_text("\n".join([
            "[defaults]",
            f"inventory = {self.inventory}",
            "host_key_checking = True",
            f"local_tmp = {self.dir}/tmp",
            "retry_files_enabled = False",
            "interpreter_python = /usr/bin/python3",
            "",
        ]))

    def env(self, run_dir: Path) -> Mapping[str, str]:
        """Ansible's defaults otherwise (ControlPersist 60 s, no pipelining);
        each run gets its own ControlPath folder so no run reuses another's
        connections."""
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(self.config),
            "ANSIBLE_HOME": str(self.dir / "home"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_SYSTEM_WARNINGS": "0",
            "PATH": f"{self.bin_dir}:{env.get('PATH', '')}",
        })
        return env

    def adhoc(self, module: str, args: str, forks: int) -> list[str]:
        return [str(self.bin_dir / "ansible"), "workers", "-i", str(self.inventory), "-f", str(forks),
                "-m", module, "-a", args]

    def playbook(self, path: Path, forks: int) -> list[str]:
        return [str(self.bin_dir / "ansible-playbook"), "-i", str(self.inventory), "-f", str(forks), str(path)]


def close_connections(run_dir: Path, *, timeout: float = 30.0) -> int:
    """Stop the SSH control masters a run left behind (ControlPersist keeps
    each one, and its sshd session on the worker, for 60 s), so that they do
    not exit in the middle of the next measurement. Returns how many there were."""
    title = f"ssh: {run_dir / 'cp'}/"
    masters = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(title.encode()):
                    masters.append(int(entry.name))
            except OSError:
                continue
    for pid in masters:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in masters):
        time.sleep(0.1)
    return len(masters)


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return proc_stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def count_adhoc_ok(output: str) -> int:
    """Hosts that answered: ``name | CHANGED | rc=0 >>`` or ``| SUCCESS``."""
    ok = 0
    for line in output.splitlines():
        parts = line.split(" | ")
        if len(parts) >= 3 and parts[1] in ("CHANGED", "SUCCESS") and "rc=0" in parts[2]:
            ok += 1
    return ok


def adhoc_statuses(output: str) -> Counter:
    """How many hosts ended how: CHANGED, SUCCESS, UNREACHABLE!, FAILED!."""
    found: Counter = Counter()
    for line in output.splitlines():
        parts = line.split(" | ")
        word = parts[1].split(" ")[0].rstrip("!") if len(parts) >= 2 else ""
        if word in ("CHANGED", "SUCCESS", "UNREACHABLE", "FAILED"):
            found[word.lower()] += 1
    return found


def count_recap_ok(output: str) -> int:
    """Hosts whose PLAY RECAP says unreachable=0 failed=0."""
    ok = 0
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line and "unreachable=0" in line and "failed=0" in line:
            ok += 1
    return ok
