"""Answers files (``answers.yaml``): read with line numbers, written back
without secrets.

``load_answers(path)`` reads the file with YAML's compose API, so every key
and value keeps its line; each problem is reported as
``answers.yaml line 7: workers[2].port: 70000 is out of range``, all of them
at once. Unknown keys are errors, with the nearest known key suggested.
Relative paths in the file are taken from the file's folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping

import attrs
import yaml

from . import errors
from .quickstart_answers import QuickstartAnswers, check_answers

_NULL = "tag:yaml.org,2002:null"


def load_answers(path: str | Path) -> QuickstartAnswers:
    """The answers in ``path``; ``AnswersInvalid`` lists every problem with its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise errors.InvalidInput("config", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("config", f"cannot read {path}: {exc}") from None
    return parse_answers(text, source=str(path), base_dir=path.parent)


def parse_answers(text: str, *, source: str = "answers", base_dir: Path | None = None,
                  check_paths: bool = True) -> QuickstartAnswers:
    """``check_paths`` False takes file paths as they are (previous answers:
    their files are checked again when they are used)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise errors.AnswersInvalid(source, [(f"{source} line {line}", "yaml", f"not valid YAML: {exc.problem}")])
    except yaml.YAMLError as exc:
        raise errors.AnswersInvalid(source, [(source, "yaml", f"not valid YAML: {exc}")]) from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    walker = _Walker(source, base_dir, check_paths)
    answers = walker.section(QuickstartAnswers, node, "")
    walker.cross_check(answers)
    walker.raise_problems()
    assert answers is not None
    return answers


def answers_from_mapping(data: Mapping[str, Any], *, source: str = "answers",
                         base_dir: Path | None = None) -> QuickstartAnswers:
    """Answers given as plain Python data (what ``yaml.safe_load`` would make)."""
    text = yaml.safe_dump(_plain(dict(data)), sort_keys=False)
    return parse_answers(text, source=source, base_dir=base_dir)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def answers_document(answers: QuickstartAnswers) -> dict[str, Any]:
    """The answers as plain data for an answers file, secrets left out."""
    return _document(answers)


def dump_answers(answers: QuickstartAnswers) -> str:
    header = "# dc-overview quickstart answers (secrets are never written here). See docs/quickstart.md.\n"
    return header + yaml.safe_dump(answers_document(answers), sort_keys=False, default_flow_style=False)


def _document(value: Any) -> Any:
    if attrs.has(type(value)):
        out = {}
        for field in attrs.fields(type(value)):
            if field.metadata.get("secret"):
                continue
            out[field.name] = _document(getattr(value, field.name))
        return out
    if isinstance(value, tuple):
        return [_document(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _document(v) for k, v in value.items()}
    return value


class _Walker:
    """Builds the answers from YAML nodes, collecting every problem with its line."""

    def __init__(self, source: str, base_dir: Path | None, check_paths: bool = True) -> None:
        self.source = source
        self.base_dir = base_dir
        self.check_paths = check_paths
        self.problems: list[tuple[int, str, str]] = []
        self.lines: dict[str, int] = {}
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else self._nearest_line(path)
        self.problems.append((line, path or "answers", message))

    def _nearest_line(self, path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0] if "." in path else ""
        return 1

    def raise_problems(self) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda p: p[0])
            raise errors.AnswersInvalid(self.source, [(f"{self.source} line {line}", path, message)
                                                      for line, path, message in ordered])

    def cross_check(self, answers: QuickstartAnswers | None) -> None:
        if answers is None or self.problems:
            return
        for path, message in check_answers(answers):
            self.problems.append((self._nearest_line(path), path, message))

    # -- sections and values ------------------------------------------------------------------

    def section(self, cls: type, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "must be a mapping (key: value lines)")
            return None
        fields = {f.name: f for f in attrs.fields(cls)}
        values: dict[str, Any] = {}
        seen: dict[str, int] = {}
        broken = False
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{path}.{key}" if path else str(key)
            if key is None:
                self.problem(key_node, path, "a key must be a plain word")
                broken = True
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.problem(key_node, where, f"is given twice (also on line {seen[key]})")
                broken = True
                continue
            seen[key] = line
            if key not in fields:
                self.problem(key_node, where, _unknown(key, list(fields)))
                broken = True
                continue
            self.lines[where] = line
            ok, value = self.value(fields[key], value_node, where)
            if ok:
                values[key] = value
            else:
                broken = True
        for name, field in fields.items():
            if field.default is attrs.NOTHING and name not in values and name not in seen:
                self.problem(node, f"{path}.{name}" if path else name, "is required")
                broken = True
        if broken:
            return None
        try:
            return cls(**values)
        except errors.InvalidInput as exc:  # a converter that needs the other fields
            self.problem(None, f"{path}.{exc.field}" if path else exc.field, exc.message.split(": ", 1)[-1])
            return None

    def value(self, field: attrs.Attribute, node: yaml.Node, path: str) -> tuple[bool, Any]:
        kind = field.metadata.get("kind")
        if kind == "section":
            if _is_null(node):
                return True, None if field.default is None else field.metadata["cls"]()
            built = self.section(field.metadata["cls"], node, path)
            return built is not None, built
        if kind == "list":
            return self.sequence(field.metadata["cls"], node, path)
        if kind == "options":
            return self.options(field, node, path)
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, "must be a single value, not a list or mapping")
            return False, None
        raw: Any = None if _is_null(node) else (
            node.value if kind in ("text", "path", "secret", "password", "name", "address", "user", "username",
                                   "choice") else self._constructor.construct_object(node))
        if kind == "path" and raw is not None:
            raw = self._path(raw, node, path)
            if raw is None:
                return False, None
        return self.convert(field.converter, raw, node, path)

    def convert(self, converter: Any, raw: Any, node: yaml.Node, path: str) -> tuple[bool, Any]:
        try:
            return True, converter(raw) if converter else raw
        except errors.InvalidInput as exc:
            message = exc.message.split(": ", 1)[-1]
            self.problem(node, path, message + (f" ({exc.hint})" if exc.hint else ""))
        except (TypeError, ValueError) as exc:
            self.problem(node, path, f"{raw!r} is not valid: {exc}")
        return False, None

    def sequence(self, cls: type, node: yaml.Node, path: str) -> tuple[bool, Any]:
        if _is_null(node):
            return True, ()
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "must be a list (lines starting with '- ')")
            return False, None
        items = []
        for index, item in enumerate(node.value):
            where = f"{path}[{index}]"
            self.lines[where] = item.start_mark.line + 1
            items.append(self.section(cls, item, where))
        return all(i is not None for i in items), tuple(items)

    def options(self, field: attrs.Attribute, node: yaml.Node, path: str) -> tuple[bool, Any]:
        if _is_null(node):
            return True, {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "must be a mapping of stack options")
            return False, None
        from .quickstart_answers import ADVANCED_STACK_OPTIONS

        values: dict[str, Any] = {}
        ok = True
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = f"{path}.{key}"
            self.lines[where] = key_node.start_mark.line + 1
            if key not in ADVANCED_STACK_OPTIONS:
                self.problem(key_node, where, _unknown(key, list(ADVANCED_STACK_OPTIONS)))
                ok = False
                continue
            raw = None if _is_null(value_node) else (
                self._constructor.construct_object(value_node) if isinstance(value_node, yaml.ScalarNode)
                else value_node)
            if isinstance(raw, yaml.Node):
                self.problem(value_node, where, "must be a single value")
                ok = False
                continue
            good, _ = self.convert(field.converter, {key: raw}, value_node, where)
            ok = ok and good
            values[key] = raw
        return ok, values

    def _path(self, raw: str, node: yaml.Node, path: str) -> str | None:
        target = Path(raw).expanduser()
        if not target.is_absolute() and self.base_dir is not None:
            target = self.base_dir / target
        if self.check_paths and not target.exists():
            self.problem(node, path, f"{target} does not exist")
            return None
        return str(target.resolve())


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r} (known here: {', '.join(known)})"
