"""Reading the shell's command lines against the CLI's click group: which
command a line names, which of its parameters hold server, SSH key or
setting names, and the completer built on that.

Everything here works from the click definitions, so a new command completes
its subcommands and options with no change here. What a parameter names is
read from the command line's shape (see ``name_kind``):

- a parameter called ``server``/``servers``/``server_name(s)`` or with metavar
  ``SERVER``/``SERVER...`` holds server names; ``ssh_key``/``key_name`` or
  metavar ``KEYNAME`` holds SSH key names;
- the ``NAME`` arguments of the ``servers``, ``keys`` and ``settings`` groups
  name one that exists, except where the command makes a new one;
- the ``NAME...`` argument (``names``) of a top-level command names servers,
  as in ``check``, ``install-exporters``, ``remove-exporters``.
"""

from __future__ import annotations

import re
import shlex
from typing import Iterable, Iterator, Mapping, Protocol

import attrs
import click
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from dc_overview.domain import SETTING_NAMES

PROG_NAME = "dc-overview"
SERVER, KEY, SETTING = "server", "key", "setting"

# What the shell adds to the CLI's commands.
BUILTINS: Mapping[str, str] = {
    "use": "Set the current server (`use NAME`), show it (`use`) or clear it (`use -`).",
    "help": "Show the commands, or one command's help (`help servers add`).",
    "exit": "Leave the shell (also `quit` or Ctrl-D).",
    "quit": "Leave the shell.",
}

_KIND_BY_PARAM_NAME = {
    "server": SERVER, "servers": SERVER, "server_name": SERVER, "server_names": SERVER,
    "ssh_key": KEY, "key_name": KEY,
}
_KIND_BY_METAVAR = {"SERVER": SERVER, "SERVER...": SERVER, "KEYNAME": KEY}
_KIND_BY_GROUP = {"servers": SERVER, "keys": KEY, "settings": SETTING}
_MAKES_NEW_NAME = {("servers", "add"), ("keys", "add"), ("keys", "generate")}


class NameSource(Protocol):
    """Where the completer finds the names of ``SERVER``s and ``KEY``s."""

    def names(self, kind: str) -> list[str]: ...


def name_kind(path: tuple[str, ...], param: click.Parameter) -> str | None:
    """``SERVER``, ``KEY`` or ``SETTING`` when ``param`` of the command at ``path``
    holds such names, else None."""
    if isinstance(param, click.Argument) and param.name in ("name", "names"):
        if len(path) == 1:
            return SERVER if param.name == "names" else None
        return _KIND_BY_GROUP.get(path[0]) if len(path) == 2 and path not in _MAKES_NEW_NAME else None
    return _KIND_BY_PARAM_NAME.get(param.name or "") or _KIND_BY_METAVAR.get(param.metavar or "")


@attrs.frozen
class Line:
    """A command line read as far as its commands go: ``path`` are the command
    names (``("servers", "show")``), ``ctx`` a context of the deepest one
    (nothing parsed or run), ``consumed`` how many tokens led there, ``args``
    the rest."""

    path: tuple[str, ...]
    ctx: click.Context
    consumed: int
    args: list[str]

    @property
    def command(self) -> click.Command:
        return self.ctx.command


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    return command.context_class(command, info_name=name, parent=parent, **command.context_settings)


def read_line(root: click.Group, tokens: list[str]) -> Line:
    ctx, path, consumed, i = _context(root, PROG_NAME, None), (), 0, 0
    while isinstance(ctx.command, click.Group) and i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and token != "-":
            i += 1 + _values_taken(ctx, token)
            continue
        sub = ctx.command.get_command(ctx, token)
        if sub is None:
            break
        path, ctx = (*path, token), _context(sub, token, ctx)
        i = consumed = i + 1
    return Line(path, ctx, consumed, tokens[consumed:])


def _option(ctx: click.Context, token: str) -> click.Option | None:
    name = token.split("=", 1)[0]
    for param in ctx.command.get_params(ctx):
        if isinstance(param, click.Option) and (name in param.opts or name in param.secondary_opts):
            return param
    return None


def _values_taken(ctx: click.Context, token: str) -> int:
    """How many of the tokens after ``token`` are its option's values."""
    option = _option(ctx, token)
    if option is None or option.is_flag or option.count or "=" in token:
        return 0
    return max(option.nargs, 1)


@attrs.frozen
class _Scan:
    positional: list[str]
    pending: click.Option | None  # an option still waiting for its value
    used: frozenset[str]


def _scan(line: Line) -> _Scan:
    positional: list[str] = []
    used: set[str] = set()
    args, i = line.args, 0
    while i < len(args):
        token = args[i]
        if token == "--":
            positional += args[i + 1:]
            break
        if token.startswith("-") and token != "-":
            taken = _values_taken(line.ctx, token)
            used.add(token.split("=", 1)[0])
            if i + taken >= len(args):
                return _Scan(positional, _option(line.ctx, token) if taken else None, frozenset(used))
            i += 1 + taken
        else:
            positional.append(token)
            i += 1
    return _Scan(positional, None, frozenset(used))


def _arguments(command: click.Command) -> list[click.Argument]:
    return [p for p in command.params if isinstance(p, click.Argument)]


def _argument_at(command: click.Command, index: int) -> click.Argument | None:
    for argument in _arguments(command):
        if argument.nargs < 0 or index < argument.nargs:
            return argument
        index -= argument.nargs
    return None


def with_current_server(root: click.Group, tokens: list[str], server: str | None) -> list[str]:
    """``tokens`` with ``server`` put in as the server name when the command's
    first argument holds server names and no argument at all was given (nor
    ``--all``, nor a help option)."""
    line = read_line(root, tokens)
    if server is None or isinstance(line.command, click.Group):
        return tokens
    arguments = _arguments(line.command)
    scan = _scan(line)
    if (not arguments or name_kind(line.path, arguments[0]) != SERVER or scan.positional
            or {"--all", *line.ctx.help_option_names} & scan.used):
        return tokens
    return [*tokens[:line.consumed], server, *tokens[line.consumed:]]


def split_words(text: str) -> list[str]:
    """``text`` split as a shell would; an unclosed quote is closed at the end."""
    for closing in ("", '"', "'"):
        try:
            return shlex.split(text + closing)
        except ValueError:
            continue
    return text.split()


class CommandCompleter(Completer):
    """Completes the CLI's commands, subcommands and options, the shell's own
    commands, and server, SSH key, setting and file names where a command takes
    them. Reads names from ``names`` only; never touches the fleet itself."""

    def __init__(self, root: click.Group, names: NameSource, exclude: Iterable[str] = ()) -> None:
        self.root = root
        self.names = names
        self.exclude = frozenset(exclude)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        typed = re.search(r"\S*$", text).group()  # type: ignore[union-attr]
        tokens = split_words(text[: len(text) - len(typed)])
        word = split_words(typed)[0] if typed.strip() else ""
        if tokens[:1] == [PROG_NAME]:
            tokens = tokens[1:]
        if isinstance(candidates := self._candidates(tokens, word), PathCompleter):
            yield from candidates.get_completions(Document(word), complete_event)
            return
        for value, meta in sorted(candidates.items()):
            if value.startswith(word):
                yield Completion(shlex.quote(value), start_position=-len(typed), display_meta=meta)

    def _candidates(self, tokens: list[str], word: str) -> dict[str, str] | PathCompleter:
        if not tokens:
            return {**self._subcommands(_context(self.root, PROG_NAME, None)), **BUILTINS}
        if tokens[0] == "use":
            return dict.fromkeys(self.names.names(SERVER), "") if len(tokens) == 1 else {}
        if tokens[0] == "help":
            line = read_line(self.root, tokens[1:])
            return self._subcommands(line.ctx) if not line.args else {}
        line = read_line(self.root, tokens)
        scan = _scan(line)
        if scan.pending is not None:
            return self._values(line, scan.pending, [])
        if word.startswith("-"):
            return self._options(line.ctx, scan.used)
        if isinstance(line.command, click.Group):
            return {} if scan.positional else self._subcommands(line.ctx)
        argument = _argument_at(line.command, len(scan.positional))
        if argument is None:
            return self._options(line.ctx, scan.used)
        return self._values(line, argument, scan.positional if argument.nargs < 0 else [])

    def _subcommands(self, ctx: click.Context) -> dict[str, str]:
        group = ctx.command
        if not isinstance(group, click.Group):
            return {}
        found = {}
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is not None and not command.hidden and (ctx.parent or name not in self.exclude):
                found[name] = command.get_short_help_str(60)
        return found

    def _options(self, ctx: click.Context, used: frozenset[str]) -> dict[str, str]:
        found = {}
        for param in ctx.command.get_params(ctx):
            if not isinstance(param, click.Option) or param.hidden:
                continue
            names = [*param.opts, *param.secondary_opts]
            if param.multiple or not used & set(names):
                shown = [n for n in names if n.startswith("--")] or names
                found.update(dict.fromkeys(shown, param.help or ""))
        return found

    def _values(self, line: Line, param: click.Parameter, given: list[str]) -> dict[str, str] | PathCompleter:
        kind = name_kind(line.path, param)
        if kind == SETTING:
            return dict.fromkeys(SETTING_NAMES, "")
        if kind is not None:
            return dict.fromkeys((n for n in self.names.names(kind) if n not in given), "")
        if isinstance(param.type, click.Choice):
            return dict.fromkeys(map(str, param.type.choices), "")
        if isinstance(param.type, click.Path):
            return PathCompleter(expanduser=True)
        return {}
