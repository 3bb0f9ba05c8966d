"""The shell's completer and its reading of command lines, against the real
CLI group and a fixed list of names."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from dc_overview.domain import SETTING_NAMES
from dc_overview.frontends.cli import cli
from dc_overview.frontends.shell_completion import (
    KEY,
    SERVER,
    CommandCompleter,
    name_kind,
    read_line,
    split_words,
    with_current_server,
)


class Names:
    def __init__(self) -> None:
        self.by_kind = {SERVER: ["db-01", "gpu-01", "gpu-02"], KEY: ["fleet", "spare"]}

    def names(self, kind: str) -> list[str]:
        return self.by_kind.get(kind, [])


@pytest.fixture
def complete():
    completer = CommandCompleter(cli, Names(), exclude=("shell",))

    def run(text: str) -> list[str]:
        event = CompleteEvent(completion_requested=True)
        return [c.text for c in completer.get_completions(Document(text), event)]

    return run


def test_top_level_offers_every_command_and_the_shells_own(complete):
    offered = complete("")
    assert {"servers", "keys", "settings", "targets", "use", "help", "exit", "quit"} <= set(offered)
    assert "shell" not in offered
    assert offered == sorted(offered)


def test_a_prefix_narrows(complete):
    offered = complete("se")
    assert {"servers", "settings"} <= set(offered)
    assert all(word.startswith("se") for word in offered)
    assert complete("servers") == ["servers"]


def test_subcommands_of_a_group(complete):
    assert {"list", "show", "add", "update", "remove", "import"} <= set(complete("servers "))
    assert complete("servers sh") == ["show"]
    assert complete("keys g") == ["generate"]


def test_options_of_a_command(complete):
    offered = complete("servers add --")
    assert {"--user", "--port", "--key", "--bmc-ip", "--label", "--json", "--help"} <= set(offered)
    assert complete("servers list --j") == ["--json"]


def test_options_given_once_are_not_offered_again_but_repeatable_ones_are(complete):
    offered = complete("servers add n 10.0.0.5 --port 2200 --label a=b --")
    assert "--port" not in offered
    assert "--label" in offered


def test_after_the_last_argument_options_are_offered(complete):
    assert "--json" in complete("servers list ")


@pytest.mark.parametrize("line", ["servers show ", "servers update ", "servers remove ", "use "])
def test_server_names_where_a_command_takes_an_existing_server(complete, line):
    assert complete(line) == ["db-01", "gpu-01", "gpu-02"]


@pytest.mark.parametrize("command", ["check", "install-exporters", "remove-exporters", "servers trust"])
def test_fleet_operations_take_server_names(complete, command):
    assert complete(f"{command} gpu") == ["gpu-01", "gpu-02"]


def test_a_name_already_given_is_not_offered_again(complete):
    assert complete("servers remove gpu-01 ") == ["db-01", "gpu-02"]


def test_server_names_with_a_prefix(complete):
    assert complete("servers show gp") == ["gpu-01", "gpu-02"]
    assert complete("use d") == ["db-01"]


@pytest.mark.parametrize("line", ["keys show ", "keys remove ", "servers add n 10.0.0.5 --key ",
                                  "servers update gpu-01 --key "])
def test_key_names_where_a_command_takes_a_key(complete, line):
    assert complete(line) == ["fleet", "spare"]


@pytest.mark.parametrize("line", ["servers add ", "servers add n ", "keys generate ", "keys add "])
def test_nothing_is_offered_for_a_new_name_or_an_address(complete, line):
    assert complete(line) == []


def test_setting_names(complete):
    assert complete("settings get ") == sorted(SETTING_NAMES)
    assert complete("settings set ssh_c") == ["ssh_command_timeout", "ssh_concurrency", "ssh_connect_timeout"]


def test_help_completes_command_paths(complete):
    assert complete("help setti") == ["settings"]
    assert "add" in complete("help servers ")


def test_file_names_where_a_command_takes_a_path(complete, tmp_path: Path):
    (tmp_path / "fleet.csv").write_text("")
    (tmp_path / "fleet-old.csv").write_text("")
    assert complete(f"servers import {tmp_path}/fleet.") == ["csv"]
    assert sorted(complete(f"servers import {tmp_path}/fl")) == ["eet-old.csv", "eet.csv"]


def test_a_leading_program_name_is_read_past(complete):
    assert complete("dc-overview servers sh") == ["show"]


def test_unknown_words_offer_nothing(complete):
    assert complete("frobnicate ") == []
    assert complete("servers frobnicate ") == []


def test_an_unclosed_quote_is_read_as_the_word_being_typed():
    assert split_words("servers show 'gpu") == ["servers", "show", "gpu"]


def test_read_line_finds_the_command_past_group_options():
    line = read_line(cli, ["--data-dir", "/x", "servers", "show", "gpu-01"])
    assert line.path == ("servers", "show")
    assert line.args == ["gpu-01"]
    assert line.consumed == 4


def test_name_kinds_follow_the_conventions():
    assert name_kind(("servers", "show"), click.Argument(["name"])) == SERVER
    assert name_kind(("servers", "add"), click.Argument(["name"])) is None
    assert name_kind(("keys", "generate"), click.Argument(["name"])) is None
    assert name_kind(("anything",), click.Argument(["names"], nargs=-1)) == SERVER
    assert name_kind(("stack", "set"), click.Argument(["name"])) is None
    assert name_kind(("exporters", "restart"), click.Argument(["servers"], nargs=-1)) == SERVER
    assert name_kind(("a", "b"), click.Option(["--key", "ssh_key"])) == KEY
    assert name_kind(("a", "b"), click.Option(["--with"], metavar="KEYNAME")) == KEY


# -- the current server (`use NAME`) -----------------------------------------------


@pytest.mark.parametrize(
    ("typed", "run"),
    [
        ("servers show", "servers show gpu-02"),
        ("servers update --port 2222", "servers update gpu-02 --port 2222"),
        ("servers remove", "servers remove gpu-02"),
        ("servers show gpu-01", "servers show gpu-01"),
        ("servers show --help", "servers show --help"),
        ("servers add web 10.0.0.9", "servers add web 10.0.0.9"),
        ("servers list", "servers list"),
        ("keys show", "keys show"),
        ("servers", "servers"),
        ("--data-dir /x servers show", "--data-dir /x servers show gpu-02"),
    ],
)
def test_the_current_server_is_given_where_a_server_name_is_missing(typed, run):
    assert with_current_server(cli, typed.split(), "gpu-02") == run.split()


def test_no_current_server_changes_nothing():
    assert with_current_server(cli, ["servers", "show"], None) == ["servers", "show"]


def test_fleet_operations_get_the_current_server_unless_all_is_asked_for():
    assert with_current_server(cli, ["check"], "gpu-02") == ["check", "gpu-02"]
    assert with_current_server(cli, ["check", "--all"], "gpu-02") == ["check", "--all"]
    assert with_current_server(cli, ["check", "gpu-01"], "gpu-02") == ["check", "gpu-01"]
    assert with_current_server(cli, ["servers", "trust", "--yes"], "gpu-02") == ["servers", "trust", "gpu-02", "--yes"]
