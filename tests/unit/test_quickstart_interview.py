"""The quickstart interview, driven through prompt-toolkit's pipe input (keys
as a terminal would send them) with DummyOutput, inside an app session."""

import contextlib

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from dc_overview.errors import DockerMissing
from dc_overview.ports import GpuInfo
from dc_overview.quickstart_answers import QuickstartAnswers, SshKeyAnswer, WorkerAnswer
from dc_overview.quickstart_detect import Environment, ExistingInstall, IpmiMonitorFound
from dc_overview.frontends.quickstart_interview import Asker, Declined, interview

ENTER = "\r"
KILL_LINE = "\x15"  # Ctrl-U
CTRL_C = "\x03"


def environment(**changes) -> Environment:
    values = dict(data_dir="/data", hostname="master-01", addresses=("192.0.2.10",), gpus=GpuInfo(0, "pci"),
                  docker_installed=True, docker_running=True, docker_version="Docker 24.0")
    values.update(changes)
    return Environment(**values)


@contextlib.contextmanager
def keys(*typed: str):
    """A terminal that types ``typed`` (each item one answer, Enter added)."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("".join(t if t.endswith(ENTER) or t == CTRL_C else t + ENTER for t in typed))
        pipe.close()  # a prompt beyond the typed answers ends in EOFError, never waits
        yield


def run(env: Environment, *typed: str, start=None):
    shown: list[str] = []
    with keys(*typed):
        answers = interview(env, Asker(), shown.append, start)
    return answers, "\n".join(shown)


def test_a_new_master_with_defaults_everywhere():
    answers, shown = run(environment(),
                         "",  # role: master (no GPUs here)
                         "",  # web app port 5001
                         "",  # Grafana password: generate
                         "",  # admin name: admin
                         "",  # admin password: generate
                         "",  # HTTPS: yes
                         "",  # domain: none
                         "",  # HTTPS port 443
                         "",  # Watchtower: no
                         "",  # workers: none
                         "",  # Vast.ai key: skip
                         "",  # RunPod key: skip
                         "")  # apply: yes
    assert answers == QuickstartAnswers(role="master")
    assert "This host: master-01" in shown and "Quickstart will apply:" in shown


def test_every_answer_typed_in():
    answers, _ = run(environment(ipmi_monitor=IpmiMonitorFound("/var/lib/ipmi-monitor/ipmi_events.db", 3, 1)),
                     "both",
                     "y",  # import from ipmi-monitor
                     "n",  # but no /ipmi/ route
                     "5002",
                     "grafana-pass-1",
                     "ops",
                     "ops-password-1", "ops-password-1",
                     "yes",
                     "monitor.example.net",
                     "letsencrypt",
                     "8443",
                     "y",  # Watchtower
                     "type",
                     "10.0.0.11", "gpu-02,10.0.0.12,ubuntu,2222", "",
                     "",  # SSH key: generate (no ~/.ssh/id_ed25519 assumed away below)
                     "vast-key-1",
                     "",
                     "")
    assert answers.role == "both" and answers.dc_port == 5002
    assert answers.ipmi_monitor.import_servers and answers.ipmi_monitor.route == "off"
    assert answers.grafana.admin_password == "grafana-pass-1"
    assert (answers.admin.name, answers.admin.password) == ("ops", "ops-password-1")
    assert (answers.proxy.domain, answers.proxy.tls, answers.proxy.https_port) == ("monitor.example.net", "letsencrypt", 8443)
    assert answers.watchtower and answers.vastai.api_key == "vast-key-1" and answers.runpod.api_key is None
    assert answers.workers == (WorkerAnswer("10.0.0.11", "10.0.0.11", "root", 22),
                               WorkerAnswer("10.0.0.12", "gpu-02", "ubuntu", 2222))
    assert answers.ssh_key is not None and (answers.ssh_key.generate or answers.ssh_key.path)


def test_input_is_checked_as_typed_and_a_bad_value_is_never_accepted():
    answers, _ = run(environment(),
                     "master",
                     "70000" + ENTER + KILL_LINE + "5003",  # refused, cleared, then a good port
                     "", "", "",  # Grafana password, admin name, admin password
                     "maybe" + ENTER + KILL_LINE + "n",  # HTTPS? only y or n is taken
                     "8080",  # so: the HTTP port
                     "", "", "", "", "")
    assert answers.dc_port == 5003 and not answers.proxy.https and answers.proxy.http_port == 8080


def test_a_gpu_host_defaults_to_both_and_a_worker_is_asked_nothing_more():
    answers, shown = run(environment(gpus=GpuInfo(8, "nvidia-smi")), "", "", "", "", "", "", "", "", "", "", "",
                         "", "")
    assert answers == QuickstartAnswers(role="both")  # Enter took the default
    answers, shown = run(environment(gpus=GpuInfo(8, "nvidia-smi")), "worker", "")
    assert answers == QuickstartAnswers(role="worker")
    assert "node_exporter (:9100) and the GPU exporter (:9835) will run on this host" in shown


def test_the_previous_answers_can_be_kept_as_they_are():
    previous = QuickstartAnswers(role="master", dc_port=5009, ssh_key=SshKeyAnswer("fleet"),
                                 workers=(WorkerAnswer("10.0.0.11"),))
    env = environment(existing=ExistingInstall(servers=1, keys=1, users=1, previous=previous))
    answers, shown = run(env, "", "")
    assert answers == previous
    assert "An earlier quickstart ran here" in shown and "10.0.0.11" in shown


def test_changing_an_answer_keeps_the_rest_as_defaults():
    previous = QuickstartAnswers(role="master", dc_port=5009, ssh_key=SshKeyAnswer("fleet"),
                                 workers=(WorkerAnswer("10.0.0.11"),))
    env = environment(existing=ExistingInstall(servers=1, keys=1, users=1, previous=previous))
    answers, shown = run(env, "n",  # do not keep all
                         "",  # role master
                         "5010",  # the one change
                         "",  # Grafana password: keep
                         # (an admin exists: not asked)
                         "", "", "", "",  # HTTPS, domain, port, Watchtower
                         "type", "10.0.0.12", "",  # one more worker
                         "",  # keep the fleet's key
                         "", "", "")
    assert answers.dc_port == 5010
    assert answers.workers == (WorkerAnswer("10.0.0.11"), WorkerAnswer("10.0.0.12", "10.0.0.12", "root", 22))
    assert answers.ssh_key == SshKeyAnswer("fleet")
    assert "1 worker(s) from the earlier answers are kept" in shown


def test_ctrl_c_stops_the_interview():
    with pytest.raises(KeyboardInterrupt):
        run(environment(), "master", "5001", CTRL_C)


def test_saying_no_at_the_end_applies_nothing():
    with pytest.raises(Declined):
        run(environment(), "worker", "n")


def test_docker_missing_is_offered_and_declining_stops():
    env = environment(docker_installed=False, docker_running=False, docker_problem="no socket")
    with pytest.raises(Declined, match="Docker is needed"):
        run(env, "master", "")
    answers, shown = run(env, "master", "y", "", "", "", "", "", "", "", "", "", "", "", "")
    assert answers.docker.install
    assert "apt-get install docker.io" in shown


def test_docker_installed_but_not_answering_is_not_offered_an_install():
    env = environment(docker_installed=True, docker_running=False, docker_problem="permission denied")
    with pytest.raises(DockerMissing, match="permission denied"):
        run(env, "master")


def test_a_csv_file_of_workers_is_checked_before_it_is_taken(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("gpu-01,10.0.0.300\n")
    good = tmp_path / "workers.csv"
    good.write_text("gpu-01,10.0.0.11\n")
    answers, _ = run(environment(), "master", "", "", "", "", "", "", "", "",
                     "file", str(bad) + ENTER + KILL_LINE + str(good),
                     "",  # SSH key: generate
                     "", "", "")
    assert answers.workers_file == str(good)
