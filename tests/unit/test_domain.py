import attrs
import pytest

from dc_overview import errors
from dc_overview.domain import (
    Server, Settings, change_setting, check_address, check_port, fingerprint, parse_label,
)


@pytest.mark.parametrize("value, expected", [
    ("10.0.0.5", "10.0.0.5"),
    ("2001:db8::1", "2001:db8::1"),
    ("GPU-01.Example.NET", "gpu-01.example.net"),
    ("worker7", "worker7"),
])
def test_addresses_accepted_and_normalised(value, expected):
    assert check_address(value) == expected


@pytest.mark.parametrize("value", ["", "999.1.1.1", "10.0.0.x", "a b", "-bad.host", "x" * 300, "host_name", "1.2.3"])
def test_bad_addresses_name_the_field(value):
    with pytest.raises(errors.InvalidAddress) as info:
        check_address(value, "ip")
    assert info.value.field == "ip"


@pytest.mark.parametrize("value", [0, 65536, "22x", "", None, "-1"])
def test_bad_ports(value):
    with pytest.raises(errors.InvalidPort):
        check_port(value)


@pytest.mark.parametrize("name", ["gpu-01", "ñandú_7", "节点1", "a.b-c_d"])
def test_names_accept_unicode_letters(name):
    assert Server(name=name, address="10.0.0.1").name == name


@pytest.mark.parametrize("name", ["", "x'; DROP TABLE servers;--", 'quo"te', "has space", "-lead", "a" * 65, "semi;colon"])
def test_names_reject_quotes_sql_and_spaces(name):
    with pytest.raises(errors.InvalidName) as info:
        Server(name=name, address="10.0.0.1")
    assert info.value.field == "name"
    assert "valid name" in str(info.value)


def test_server_is_frozen_and_changed_with_evolve():
    server = Server(name="gpu-01", address="10.0.0.1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        server.name = "other"  # type: ignore[misc]
    moved = attrs.evolve(server, address="10.0.0.2")
    assert (server.address, moved.address) == ("10.0.0.1", "10.0.0.2")
    with pytest.raises(errors.InvalidAddress):
        attrs.evolve(server, address="no pe")


def test_labels_are_checked():
    assert parse_label("rack=a1") == ("rack", "a1")
    with pytest.raises(errors.InvalidLabel):
        parse_label("novalue")
    with pytest.raises(errors.InvalidLabel):
        Server(name="a", address="10.0.0.1", labels={"job": "x"})
    with pytest.raises(errors.InvalidLabel):
        Server(name="a", address="10.0.0.1", labels={"bad-key": "x"})


def test_bmc_ip_must_be_an_ip():
    assert Server(name="a", address="10.0.0.1", bmc_ip="").bmc_ip is None
    with pytest.raises(errors.InvalidAddress) as info:
        Server(name="a", address="10.0.0.1", bmc_ip="bmc.example")
    assert info.value.field == "bmc_ip"


def test_may_have_gpu_until_a_check_found_none():
    assert Server(name="a", address="10.0.0.1").may_have_gpu
    assert not Server(name="a", address="10.0.0.1", gpu_count=0).may_have_gpu


def test_fingerprint_matches_openssh():
    # ssh-keygen -lf prints SHA256:ktw... for this public key (computed once with OpenSSH)
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"
    import base64, hashlib
    blob = base64.b64decode(line.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(line) == expected
    with pytest.raises(errors.InvalidKey):
        fingerprint("garbage")


def test_settings_change_by_name_with_text_values():
    settings = change_setting(Settings(), "ssh_concurrency", "120")
    assert settings.ssh_concurrency == 120
    with pytest.raises(errors.InvalidSetting) as info:
        change_setting(settings, "ssh_concurrency", "0")
    assert info.value.field == "ssh_concurrency"
    with pytest.raises(errors.InvalidSetting):
        change_setting(settings, "no_such", "1")
    with pytest.raises(errors.InvalidSetting):
        change_setting(settings, "ssh_connect_timeout", "soon")
