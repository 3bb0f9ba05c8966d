"""Quickstart's answers: the value, the answers file with line-numbered
errors, and the copy kept for the next run (without secrets)."""

from pathlib import Path

import attrs
import pytest

from dc_overview import errors, load_answers
from dc_overview.quickstart_answers import (
    ADVANCED_STACK_OPTIONS, QuickstartAnswers, WorkerAnswer, check_answers, schema,
)
from dc_overview.quickstart_answers_file import answers_from_mapping, dump_answers, parse_answers

ROOT = Path(__file__).resolve().parents[2]

FULL = """\
role: both
dc_port: 5002
docker:
  install: yes
ipmi_monitor:
  import_servers: no
  route: "off"
ssh_key:
  name: lab
  generate: yes
admin:
  name: ops
  password: correct-horse-battery
grafana:
  admin_password: grafana-secret-1
proxy:
  https: true
  domain: monitor.example.net
  tls: letsencrypt
  https_port: 8443
  http_port: 8080
watchtower: true
vastai:
  api_key: vast-key-123
runpod:
  enabled: false
workers:
  - address: 10.0.0.11
    name: gpu-01
    user: ubuntu
    port: 2222
    key: lab
  - address: 10.0.0.12
exporters:
  install: true
  gpu_simulate: 4
stack:
  start: false
  images:
    app: local/dc-overview:test
    prometheus: local/prometheus:test
  options:
    name_prefix: qs-
    network: qs-net
    prometheus_local_port: 0
host:
  name: master
  address: 10.0.0.1
"""


def problems(text: str) -> list[str]:
    with pytest.raises(errors.AnswersInvalid) as info:
        parse_answers(text, source="answers.yaml")
    return [f"{where}: {field}: {message}" for where, field, message in info.value.problems]


def test_an_empty_file_means_every_default():
    assert parse_answers("") == QuickstartAnswers()
    assert parse_answers("# nothing but a comment\n") == QuickstartAnswers()


def test_every_section_and_kind_of_value_is_read():
    answers = parse_answers(FULL)
    assert answers.role == "both" and answers.master and answers.worker
    assert answers.dc_port == 5002 and answers.docker.install and not answers.ipmi_monitor.import_servers
    assert answers.ipmi_monitor.route == "off"
    assert (answers.ssh_key.name, answers.ssh_key.generate) == ("lab", True)
    assert answers.admin.name == "ops" and answers.admin.password == "correct-horse-battery"
    assert answers.proxy.https_port == 8443 and answers.proxy.tls == "letsencrypt"
    assert answers.vastai.api_key == "vast-key-123" and answers.runpod.enabled is False
    assert answers.workers == (WorkerAnswer("10.0.0.11", "gpu-01", "ubuntu", 2222, "lab"), WorkerAnswer("10.0.0.12"))
    assert answers.exporters.gpu_simulate == 4 and not answers.stack.start
    assert answers.stack.images.app == "local/dc-overview:test" and answers.stack.images.grafana is None
    assert answers.stack.options == {"name_prefix": "qs-", "network": "qs-net", "prometheus_local_port": 0}
    assert (answers.host.name, answers.host.address) == ("master", "10.0.0.1")


def test_a_value_out_of_range_is_reported_with_its_line_and_path():
    text = "role: master\nworkers:\n  - address: 10.0.0.1\n  - address: 10.0.0.2\n    port: 22\n" \
           "  - address: 10.0.0.3\n    port: 70000\n"
    assert problems(text) == ["answers.yaml line 7: workers[2].port: 70000 is out of range (ports are 1-65535)"]


def test_every_problem_is_reported_at_once_in_line_order():
    text = "rol: master\ndc_port: http\nproxy:\n  tls: acme\n  https: perhaps\nworkers:\n  - name: gpu-01\n"
    assert problems(text) == [
        "answers.yaml line 1: rol: unknown key 'rol' (did you mean 'role'?)",
        "answers.yaml line 2: dc_port: 'http' is not a port number",
        "answers.yaml line 4: proxy.tls: 'acme' is not one of self-signed, letsencrypt",
        "answers.yaml line 5: proxy.https: 'perhaps' is not yes or no",
        "answers.yaml line 7: workers[0].address: is required",
    ]


def test_unknown_keys_are_errors_with_a_suggestion_or_the_known_keys():
    found = problems("grafana:\n  admin_pasword: x\nzzz: 1\n")
    assert found[0] == "answers.yaml line 2: grafana.admin_pasword: unknown key 'admin_pasword' " \
                       "(did you mean 'admin_password'?)"
    assert found[1].startswith("answers.yaml line 3: zzz: unknown key 'zzz' (known here: role, dc_port, docker,")


def test_a_key_given_twice_is_an_error_naming_both_lines():
    assert problems("role: master\ndc_port: 5001\nrole: worker\n") == [
        "answers.yaml line 3: role: is given twice (also on line 1)"]


def test_wrong_shapes_are_named():
    assert problems("workers: 10.0.0.1\n") == ["answers.yaml line 1: workers: must be a list (lines starting with '- ')"]
    assert problems("proxy: yes\n") == ["answers.yaml line 1: proxy: must be a mapping (key: value lines)"]
    assert problems("role: [master]\n") == ["answers.yaml line 1: role: must be a single value, not a list or mapping"]
    assert problems("- role\n") == ["answers.yaml line 1: answers: must be a mapping (key: value lines)"]


def test_yaml_that_does_not_parse_names_its_line():
    (found,) = problems("role: master\nworkers:\n  - address: [10.0.0.1\n")
    assert found.startswith("answers.yaml line 4: yaml: not valid YAML:")


def test_stack_options_are_checked_like_stack_set():
    assert problems("stack:\n  options:\n    retention: forever\n    tls: off\n") == [
        "answers.yaml line 3: stack.options.retention: 'forever' is not valid (e.g. 15d, 26w)",
        "answers.yaml line 4: stack.options.tls: unknown key 'tls' (known here: " + ", ".join(ADVANCED_STACK_OPTIONS) + ")",
    ]


def test_checks_across_fields_point_at_the_field():
    assert problems("proxy:\n  tls: letsencrypt\n") == [
        "answers.yaml line 2: proxy.tls: letsencrypt needs proxy.domain, the name the certificate is for"]
    assert problems("ssh_key:\n  path: /etc/hostname\n  generate: yes\n") == [
        "answers.yaml line 3: ssh_key.generate: give ssh_key.path or generate: yes, not both"]
    assert problems("workers:\n  - address: 10.0.0.1\n  - address: 10.0.0.1\n    name: other\n") == [
        "answers.yaml line 3: workers[1].address: '10.0.0.1' is also workers[0]"]
    assert problems("role: worker\nworkers:\n  - address: 10.0.0.1\n") == [
        "answers.yaml line 2: workers: only a master adds workers, and role is worker"]


def test_relative_paths_are_taken_from_the_files_folder_and_must_exist(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "node_exporter").write_bytes(b"\x7fELF")
    config = tmp_path / "answers.yaml"
    config.write_text("exporters:\n  node_exporter_binary: bin/node_exporter\n")
    assert load_answers(config).exporters.node_exporter_binary == str(tmp_path / "bin" / "node_exporter")
    config.write_text("exporters:\n\n  gpu_exporter_artifact: missing.pyz\n")
    with pytest.raises(errors.AnswersInvalid) as info:
        load_answers(config)
    assert str(info.value).startswith(f"{config} line 3: exporters.gpu_exporter_artifact: "
                                      f"{tmp_path / 'missing.pyz'} does not exist")


def test_a_missing_answers_file_is_one_clear_error(tmp_path):
    with pytest.raises(errors.InvalidInput, match="does not exist"):
        load_answers(tmp_path / "nope.yaml")


def test_secrets_stay_out_of_reprs_and_of_the_kept_copy():
    answers = parse_answers(FULL)
    text = dump_answers(answers)
    for secret in ("correct-horse-battery", "grafana-secret-1", "vast-key-123"):
        assert secret not in repr(answers) and secret not in text
    again = parse_answers(text, check_paths=False)
    assert again == attrs.evolve(
        answers, admin=attrs.evolve(answers.admin, password=None),
        grafana=attrs.evolve(answers.grafana, admin_password=None),
        vastai=attrs.evolve(answers.vastai, api_key=None))


def test_answers_from_python_data_take_the_same_checks():
    answers = answers_from_mapping({"role": "master", "workers": [{"address": "10.0.0.5", "port": 2200}]})
    assert answers.workers == (WorkerAnswer("10.0.0.5", port=2200),)
    with pytest.raises(errors.AnswersInvalid, match=r"answers line 1: role: 'boss' is not one of worker, master, both"):
        answers_from_mapping({"role": "boss"})


def test_values_made_in_code_are_checked_on_construction():
    with pytest.raises(errors.InvalidPort):
        WorkerAnswer("10.0.0.1", port=0)
    with pytest.raises(errors.InvalidInput):
        QuickstartAnswers(role="boss")
    assert check_answers(QuickstartAnswers()) == []


def test_every_key_of_the_answers_file_is_documented():
    doc = (ROOT / "docs" / "quickstart.md").read_text()
    missing = [path for path, *_ in schema() if f"`{path}`" not in doc]
    assert not missing, f"answers keys missing from docs/quickstart.md: {missing}"
