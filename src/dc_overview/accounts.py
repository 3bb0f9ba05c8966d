"""Use cases for the people and programs that use the web app and the API:
users and roles, passwords, API tokens (shown once, stored hashed) and
login sessions (stored hashed, expiring). Password hashing runs in a worker
thread so that a login never stalls the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from . import errors
from .identity import (
    ApiToken,
    LoginSession,
    Role,
    User,
    check_password,
    check_role,
    check_token_label,
    check_username,
)
from .passwords import ScryptHasher, new_secret, token_hash
from .ports import AccountStore, Deps, PasswordHasher

SESSION_LIFETIME = timedelta(days=7)  # a login lasts at most this long
SESSION_IDLE = timedelta(hours=24)  # and ends after this long without a request
TOUCH_EVERY = timedelta(minutes=1)  # last-seen/last-used times are written at most this often
TOKEN_PREFIX = "dco_"


@attrs.frozen
class NewToken:
    """A token just made: ``secret`` is shown to the person once, never again."""

    token: ApiToken
    secret: str = attrs.field(repr=False)


@attrs.frozen
class NewSession:
    session: LoginSession
    secret: str = attrs.field(repr=False)


def _store(deps: Deps) -> AccountStore:
    if deps.accounts is None:
        raise errors.OperationUnavailable("user accounts", "open the fleet with dc_overview.open()")
    return deps.accounts


T = TypeVar("T")
_DEFAULT_HASHER = ScryptHasher()


def _hasher(deps: Deps) -> PasswordHasher:
    return deps.passwords or _DEFAULT_HASHER


_KDF_POOL: concurrent.futures.ThreadPoolExecutor | None = None


async def _in_kdf_pool(work: Callable[..., T], *args: object) -> T:
    """Password hashing on two threads of its own, whatever arrives: each hash
    takes ~32 MiB and a core, and a burst of logins must neither exhaust
    memory nor take the threads the rest of the app uses (DNS lookups)."""
    global _KDF_POOL
    if _KDF_POOL is None:
        _KDF_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="kdf")
    return await asyncio.get_running_loop().run_in_executor(_KDF_POOL, work, *args)


async def _hash(deps: Deps, password: str) -> str:
    return await _in_kdf_pool(_hasher(deps).hash, password)


# -- users -------------------------------------------------------------------------------


async def list_users(deps: Deps) -> list[User]:
    return _store(deps).list_users()


async def show_user(deps: Deps, name: str) -> User:
    user = _store(deps).get_user(name)
    if user is None:
        raise errors.UserNotFound(name)
    return user


async def add_user(deps: Deps, name: str, password: str, role: str | Role = Role.VIEWER) -> User:
    check_username(name)
    check_password(password)
    user = User(name=name, role=role, password_hash=await _hash(deps, password), created_at=deps.clock.now())
    store = _store(deps)
    with store.transaction():
        if store.get_user(name) is not None:
            raise errors.DuplicateUser(name)
        return store.add_user(user)


async def needs_setup(deps: Deps) -> bool:
    """True until the fleet has an admin: the web app then offers a one-time setup form."""
    return not any(u.is_admin for u in _store(deps).list_users())


async def setup_admin(deps: Deps, name: str, password: str) -> User:
    """The first admin. Refused (SetupDone) once any admin exists."""
    check_username(name)
    check_password(password)
    user = User(name=name, role=Role.ADMIN, password_hash=await _hash(deps, password), created_at=deps.clock.now())
    store = _store(deps)
    with store.transaction():
        if any(u.is_admin for u in store.list_users()):
            raise errors.SetupDone()
        if store.get_user(name) is not None:
            raise errors.DuplicateUser(name)
        return store.add_user(user)


async def remove_user(deps: Deps, name: str) -> User:
    """Remove a user with their tokens and sessions; never the last admin."""
    store = _store(deps)
    with store.transaction():
        user = await show_user(deps, name)
        if user.is_admin and _admin_count(store) == 1:
            raise errors.LastAdmin(name)
        assert user.id is not None
        store.remove_user(user.id)
    return user


async def set_password(deps: Deps, name: str, password: str) -> User:
    """A new password; every session of the user ends (tokens stay)."""
    check_password(password)
    hashed = await _hash(deps, password)
    store = _store(deps)
    with store.transaction():
        user = await show_user(deps, name)
        assert user.id is not None
        updated = store.update_user(attrs.evolve(user, password_hash=hashed))
        store.remove_user_sessions(user.id)
    return updated


async def set_role(deps: Deps, name: str, role: str | Role) -> User:
    new_role = check_role(role)
    store = _store(deps)
    with store.transaction():
        user = await show_user(deps, name)
        if user.is_admin and new_role is not Role.ADMIN and _admin_count(store) == 1:
            raise errors.LastAdmin(name)
        return store.update_user(attrs.evolve(user, role=new_role))


async def authenticate(deps: Deps, name: str, password: str) -> User:
    """The user with this name and password, or AuthenticationFailed. An
    unknown name costs as much time as a wrong password."""
    store = _store(deps)
    user = store.get_user(name) if isinstance(name, str) and name else None
    hasher = _hasher(deps)
    stored = user.password_hash if user else hasher.dummy
    matches = await _in_kdf_pool(hasher.verify, password if isinstance(password, str) else "", stored)
    if user is None or not matches:
        raise errors.AuthenticationFailed()
    if hasher.needs_rehash(user.password_hash):
        user = store.update_user(attrs.evolve(user, password_hash=await _hash(deps, password)))
    return user


def _admin_count(store: AccountStore) -> int:
    return sum(1 for u in store.list_users() if u.is_admin)


# -- API tokens ---------------------------------------------------------------------------


async def create_token(deps: Deps, user_name: str, label: str) -> NewToken:
    check_token_label(label)
    user = await show_user(deps, user_name)
    assert user.id is not None
    secret = new_secret(TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id, label=label, token_hash=token_hash(secret), prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=deps.clock.now(), user_name=user.name,
    )
    store = _store(deps)
    with store.transaction():
        stored = store.add_token(token)
    return NewToken(token=stored, secret=secret)


async def list_tokens(deps: Deps, user_name: str | None = None) -> list[ApiToken]:
    """Every token, or one user's."""
    store = _store(deps)
    if user_name is None:
        return store.list_tokens()
    user = await show_user(deps, user_name)
    return store.list_tokens(user.id)


async def revoke_token(deps: Deps, token_id: int, *, user_name: str | None = None) -> ApiToken:
    """Delete a token; with ``user_name``, only one of that user's."""
    store = _store(deps)
    with store.transaction():
        token = store.get_token(token_id)
        if token is None or (user_name is not None and token.user_name != user_name):
            raise errors.NoSuchRecord("API token", token_id)
        store.remove_token(token_id)
    return token


async def user_for_token(deps: Deps, secret: str) -> User | None:
    """The user a Bearer token belongs to, or None."""
    if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX):
        return None
    store = _store(deps)
    token = store.find_token(token_hash(secret))
    if token is None:
        return None
    now = deps.clock.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        assert token.id is not None
        store.touch_token(token.id, now)
    return store.get_user_by_id(token.user_id)


# -- login sessions ------------------------------------------------------------------------


async def start_session(deps: Deps, user: User) -> NewSession:
    assert user.id is not None
    now = deps.clock.now()
    secret = new_secret()
    session = LoginSession(
        user_id=user.id, token_hash=token_hash(secret), created_at=now,
        expires_at=now + SESSION_LIFETIME, last_seen_at=now,
    )
    store = _store(deps)
    with store.transaction():
        store.prune_sessions(now, now - SESSION_IDLE)
        stored = store.add_session(session)
    return NewSession(session=stored, secret=secret)


async def session_user(deps: Deps, secret: str) -> User | None:
    """The user of a live session, or None (unknown, expired or idle too long)."""
    if not isinstance(secret, str) or not secret:
        return None
    store = _store(deps)
    hashed = token_hash(secret)
    session = store.find_session(hashed)
    if session is None:
        return None
    now = deps.clock.now()
    if _expired(session, now):
        store.remove_session(hashed)
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        assert session.id is not None
        store.touch_session(session.id, now)
    return store.get_user_by_id(session.user_id)


async def end_session(deps: Deps, secret: str) -> None:
    if isinstance(secret, str) and secret:
        _store(deps).remove_session(token_hash(secret))


def _expired(session: LoginSession, now: datetime) -> bool:
    return now >= session.expires_at or now - session.last_seen_at >= SESSION_IDLE
