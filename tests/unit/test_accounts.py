"""Users, roles, passwords, API tokens, sessions and write-only secrets,
through the use cases over hand-written fakes (real scrypt hashing)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dc_overview import accounts, credentials, errors, passwords
from dc_overview.identity import Role
from dc_overview.passwords import ScryptHasher
from tests.fakes import FakeAccountStore, FakeSecretStore, fake_deps

GOOD = "correct horse battery"
CHEAP = ScryptHasher(n=2**10, r=8, p=1)  # real scrypt, at a cost that keeps these tests quick


@pytest.fixture
def deps():
    return fake_deps(accounts=FakeAccountStore(), secrets=FakeSecretStore(), passwords=CHEAP)


async def test_a_user_is_stored_with_a_scrypt_hash_never_the_password(deps):
    user = await accounts.add_user(deps, "alice", GOOD)
    assert user.role is Role.VIEWER and user.id is not None
    stored = deps.accounts.get_user("alice")
    assert stored.password_hash.startswith("scrypt$") and GOOD not in stored.password_hash
    assert GOOD not in repr(stored) and stored.password_hash not in repr(stored)
    assert CHEAP.verify(GOOD, stored.password_hash)


@pytest.mark.parametrize(
    "name, password, role, field",
    [
        ("", GOOD, "viewer", "name"),
        ("-dash", GOOD, "viewer", "name"),
        ("a b", GOOD, "viewer", "name"),
        ("bob", "short", "viewer", "password"),
        ("bob", "x" * 2000, "viewer", "password"),
        ("bob", "tab\tinside pw", "viewer", "password"),
        ("bob", GOOD, "root", "role"),
    ],
)
async def test_bad_user_input_names_the_field(deps, name, password, role, field):
    with pytest.raises(errors.InvalidInput) as caught:
        await accounts.add_user(deps, name, password, role)
    assert caught.value.field == field
    assert deps.accounts.users == {}


async def test_user_names_are_unique_whatever_the_case(deps):
    await accounts.add_user(deps, "Alice", GOOD)
    with pytest.raises(errors.DuplicateUser):
        await accounts.add_user(deps, "alice", GOOD)


async def test_first_admin_setup_happens_once(deps):
    assert await accounts.needs_setup(deps)
    admin = await accounts.setup_admin(deps, "root-admin", GOOD)
    assert admin.role is Role.ADMIN
    assert not await accounts.needs_setup(deps)
    with pytest.raises(errors.SetupDone):
        await accounts.setup_admin(deps, "intruder", GOOD)
    assert [u.name for u in await accounts.list_users(deps)] == ["root-admin"]


async def test_setup_is_still_open_while_only_viewers_exist(deps):
    await accounts.add_user(deps, "viewer1", GOOD)
    assert await accounts.needs_setup(deps)


async def test_authenticate_accepts_the_right_password_only(deps):
    await accounts.add_user(deps, "alice", GOOD, "admin")
    user = await accounts.authenticate(deps, "alice", GOOD)
    assert user.name == "alice" and user.is_admin
    for name, password in (("alice", GOOD + "!"), ("nobody", GOOD), ("", ""), ("alice", "")):
        with pytest.raises(errors.AuthenticationFailed) as caught:
            await accounts.authenticate(deps, name, password)
        assert "wrong user name or password" in str(caught.value)


async def test_a_weaker_stored_hash_is_upgraded_on_login(deps):
    user = await accounts.add_user(deps, "old", GOOD)
    weak = ScryptHasher(n=2**8, r=8, p=1).hash(GOOD)
    deps.accounts.update_user(user.__class__(name=user.name, role=user.role, password_hash=weak, id=user.id))
    assert CHEAP.needs_rehash(weak)
    await accounts.authenticate(deps, "old", GOOD)
    assert not CHEAP.needs_rehash(deps.accounts.get_user("old").password_hash)


async def test_the_last_admin_can_be_neither_removed_nor_demoted(deps):
    await accounts.setup_admin(deps, "boss", GOOD)
    with pytest.raises(errors.LastAdmin):
        await accounts.remove_user(deps, "boss")
    with pytest.raises(errors.LastAdmin):
        await accounts.set_role(deps, "boss", "viewer")
    await accounts.add_user(deps, "second", GOOD, "admin")
    demoted = await accounts.set_role(deps, "boss", "viewer")
    assert demoted.role is Role.VIEWER
    with pytest.raises(errors.LastAdmin):
        await accounts.remove_user(deps, "second")


async def test_removing_a_user_removes_their_tokens_and_sessions(deps):
    await accounts.setup_admin(deps, "boss", GOOD)
    bob = await accounts.add_user(deps, "bob", GOOD)
    made = await accounts.create_token(deps, "bob", "ci")
    started = await accounts.start_session(deps, bob)
    await accounts.remove_user(deps, "bob")
    assert await accounts.user_for_token(deps, made.secret) is None
    assert await accounts.session_user(deps, started.secret) is None
    with pytest.raises(errors.UserNotFound):
        await accounts.remove_user(deps, "bob")


async def test_a_new_password_ends_the_sessions_and_replaces_the_old_one(deps):
    bob = await accounts.add_user(deps, "bob", GOOD)
    started = await accounts.start_session(deps, bob)
    await accounts.set_password(deps, "bob", "a brand new secret")
    assert await accounts.session_user(deps, started.secret) is None
    with pytest.raises(errors.AuthenticationFailed):
        await accounts.authenticate(deps, "bob", GOOD)
    assert (await accounts.authenticate(deps, "bob", "a brand new secret")).name == "bob"


async def test_an_api_token_is_shown_once_and_stored_hashed(deps):
    await accounts.add_user(deps, "bot", GOOD)
    made = await accounts.create_token(deps, "bot", "ansible")
    assert made.secret.startswith("dco_") and len(made.secret) > 40
    assert made.token.token_hash == passwords.token_hash(made.secret) != made.secret
    assert made.secret not in repr(made) and made.token.prefix == made.secret[:10]
    listed = await accounts.list_tokens(deps, "bot")
    assert [t.label for t in listed] == ["ansible"] and listed[0].user_name == "bot"
    user = await accounts.user_for_token(deps, made.secret)
    assert user is not None and user.name == "bot"
    assert deps.accounts.get_token(made.token.id).last_used_at == deps.clock.now()
    for wrong in ("", "dco_nope", made.secret + "x", made.token.token_hash, None):
        assert await accounts.user_for_token(deps, wrong) is None  # type: ignore[arg-type]


async def test_tokens_are_revoked_by_their_owner_or_by_anyone_allowed_to_name_no_owner(deps):
    await accounts.add_user(deps, "bot", GOOD)
    await accounts.add_user(deps, "eve", GOOD)
    made = await accounts.create_token(deps, "bot", "ci")
    with pytest.raises(errors.NoSuchRecord):
        await accounts.revoke_token(deps, made.token.id, user_name="eve")
    revoked = await accounts.revoke_token(deps, made.token.id, user_name="bot")
    assert revoked.label == "ci"
    assert await accounts.user_for_token(deps, made.secret) is None
    with pytest.raises(errors.NoSuchRecord):
        await accounts.revoke_token(deps, made.token.id)


@pytest.mark.parametrize("label", ["", "x" * 65, "new\nline", "<script>"])
async def test_token_labels_are_checked(deps, label):
    await accounts.add_user(deps, "bot", GOOD)
    with pytest.raises(errors.InvalidInput) as caught:
        await accounts.create_token(deps, "bot", label)
    assert caught.value.field == "label"


async def test_a_session_ends_after_a_day_idle(deps):
    user = await accounts.add_user(deps, "alice", GOOD)
    started = await accounts.start_session(deps, user)
    assert started.session.token_hash == passwords.token_hash(started.secret)
    deps.clock.moment += accounts.SESSION_IDLE - timedelta(minutes=1)
    assert (await accounts.session_user(deps, started.secret)).name == "alice"  # and it is touched
    deps.clock.moment += accounts.SESSION_IDLE - timedelta(minutes=1)
    assert (await accounts.session_user(deps, started.secret)).name == "alice"
    deps.clock.moment += accounts.SESSION_IDLE
    assert await accounts.session_user(deps, started.secret) is None
    assert deps.accounts.sessions == {}


async def test_a_session_ends_after_its_lifetime_even_when_used(deps):
    user = await accounts.add_user(deps, "alice", GOOD)
    started = await accounts.start_session(deps, user)
    end = deps.clock.moment + accounts.SESSION_LIFETIME
    while deps.clock.moment + timedelta(hours=12) < end:
        deps.clock.moment += timedelta(hours=12)
        assert await accounts.session_user(deps, started.secret) is not None
    deps.clock.moment = end
    assert await accounts.session_user(deps, started.secret) is None


async def test_logging_out_ends_the_session_and_old_sessions_are_pruned(deps):
    user = await accounts.add_user(deps, "alice", GOOD)
    first = await accounts.start_session(deps, user)
    await accounts.end_session(deps, first.secret)
    assert await accounts.session_user(deps, first.secret) is None
    stale = await accounts.start_session(deps, user)
    deps.clock.moment += accounts.SESSION_IDLE + timedelta(seconds=1)
    await accounts.start_session(deps, user)
    assert deps.accounts.find_session(stale.session.token_hash) is None
    assert len(deps.accounts.sessions) == 1


# -- secrets ------------------------------------------------------------------------------------


async def test_secrets_are_write_only_and_their_status_has_no_values(deps):
    assert await credentials.secret_status(deps) == {
        "vastai_api_key": False, "runpod_api_key": False, "scrape_token": False, "grafana_admin_password": False,
        "remote_write_password": False, "alert_webhook_token": False, "smtp_password": False,
    }
    await credentials.set_secret(deps, "vastai_api_key", "  abc123  ")
    status = await credentials.secret_status(deps)
    assert status["vastai_api_key"] is True and "abc123" not in repr(status)
    assert deps.secrets.get("vastai_api_key") == "abc123"
    await credentials.clear_secret(deps, "vastai_api_key")
    assert (await credentials.secret_status(deps))["vastai_api_key"] is False


@pytest.mark.parametrize("name, value, field", [
    ("session_key", "x", "name"), ("../etc/passwd", "x", "name"), ("runpod_api_key", "   ", "value"),
    ("runpod_api_key", "two words", "value"), ("runpod_api_key", "x" * 5000, "value"),
])
async def test_bad_secrets_are_refused_by_field(deps, name, value, field):
    with pytest.raises(errors.InvalidInput) as caught:
        await credentials.set_secret(deps, name, value)
    assert caught.value.field == field
    assert deps.secrets.values == {}


async def test_the_scrape_token_is_random_and_replaced_on_request(deps):
    first = await credentials.generate_scrape_token(deps)
    second = await credentials.generate_scrape_token(deps)
    assert len(first) >= 40 and first != second
    assert await credentials.read_secret(deps, "scrape_token") == second


async def test_the_cookie_key_is_made_once_and_kept_and_replaced_when_damaged(deps):
    key = await credentials.session_key(deps)
    assert len(key) == 32 and await credentials.session_key(deps) == key
    deps.secrets.put("session_key", "not hex at all")
    fresh = await credentials.session_key(deps)
    assert len(fresh) == 32 and fresh != key


# -- the hash format ------------------------------------------------------------------------------


def test_password_hashes_are_salted_and_made_at_the_default_cost():
    hasher = ScryptHasher()
    one = hasher.hash(GOOD)
    assert one.split("$")[:4] == ["scrypt", str(passwords.N), str(passwords.R), str(passwords.P)]
    assert hasher.verify(GOOD, one)
    assert hasher.needs_rehash("garbage") and not hasher.needs_rehash(one)
    assert hasher.needs_rehash(CHEAP.hash(GOOD))
    assert CHEAP.hash(GOOD) != CHEAP.hash(GOOD)  # salted
    assert not CHEAP.verify("wrong", CHEAP.hash(GOOD))


def test_damaged_hashes_never_match_and_never_raise():
    for damaged in ("", "scrypt$", "bcrypt$1$2$3$x$y", "scrypt$3$8$1$AAAA$BBBB", "scrypt$1024$8$1$!!$??", CHEAP.dummy):
        assert not CHEAP.verify(GOOD, damaged)
    assert not CHEAP.verify("\ud800 lone surrogate", CHEAP.hash(GOOD))
