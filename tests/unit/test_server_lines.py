import pytest

from dc_overview import errors
from dc_overview.server_lines import parse_server_lines


def test_all_line_shapes():
    text = "# my fleet\n10.0.0.1\ngpu-02,10.0.0.2\n\ngpu-03, 10.0.0.3, ubuntu\ngpu-04,10.0.0.4,admin,2222\n"
    parsed = parse_server_lines(text)
    assert [(p.line, p.server.name, p.server.address, p.server.ssh_user, p.server.ssh_port) for p in parsed] == [
        (2, "10.0.0.1", "10.0.0.1", "root", 22),
        (3, "gpu-02", "10.0.0.2", "root", 22),
        (5, "gpu-03", "10.0.0.3", "ubuntu", 22),
        (6, "gpu-04", "10.0.0.4", "admin", 2222),
    ]


def test_header_line_is_skipped_and_defaults_apply():
    parsed = parse_server_lines("name,ip,user,port\na,10.0.0.1\n", default_user="ops", default_key="fleet")
    assert parsed[0].server.ssh_user == "ops"
    assert parsed[0].server.ssh_key == "fleet"


def test_every_problem_is_named_with_line_and_field():
    text = "ok,10.0.0.1\nbad ip,10.0.0.2\nc,10.0.0.x\nd,10.0.0.4,root,70000\ne,10.0.0.1\n"
    with pytest.raises(errors.ImportProblem) as info:
        parse_server_lines(text, source="fleet.csv")
    problems = info.value.problems
    assert [(where, field) for where, field, _ in problems] == [
        ("fleet.csv line 2", "name"),
        ("fleet.csv line 3", "ip"),
        ("fleet.csv line 4", "port"),
        ("fleet.csv line 5", "address"),
    ]
    assert "also on line 1" in problems[-1][2]
    assert "fleet.csv line 2" in str(info.value)


def test_malformed_csv_and_too_many_columns():
    with pytest.raises(errors.ImportProblem) as info:
        parse_server_lines('a,10.0.0.1,root,22,key,extra\n')
    assert info.value.problems[0][1] == "columns"
    with pytest.raises(errors.ImportProblem) as info:
        parse_server_lines('a,"10.0.0.1\n')
    assert info.value.problems[0][0].startswith("input line")


def test_empty_input_is_refused():
    with pytest.raises(errors.ImportProblem, match="no servers"):
        parse_server_lines("# nothing\n\n")
