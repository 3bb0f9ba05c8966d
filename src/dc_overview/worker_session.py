"""Reaching one worker: which key and user, connecting with retries when
sshd drops logins (MaxStartups), pinning the host key on first use, and
recording what was learned about reachability (``ContactLog``: in batches,
one transaction for many servers).

Used by every fleet operation (check, install, remove) through
``fanout.for_each_server``; the use cases never call the Ssh port directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import datetime
from typing import AsyncIterator, Iterable, Mapping, Sequence

import attrs

from . import errors
from .domain import Server, ServerStatus, fingerprint
from .ports import Deps, SshConnection, SshTarget
from .settings import get_settings


@attrs.frozen
class RetryPolicy:
    """Retries of logins sshd dropped: ``attempts`` tries in all, waiting
    about ``first_delay`` doubled each time (at most ``max_delay``), jittered
    so a fleet's retries do not arrive together again."""

    attempts: int = 6
    first_delay: float = 0.3
    max_delay: float = 5.0

    def delay(self, retry: int) -> float:
        base = min(self.max_delay, self.first_delay * 2 ** (retry - 1))
        return base / 2 + random.uniform(0, base / 2)


@attrs.frozen
class SshOptions:
    """How a fleet operation reaches its workers (from the settings)."""

    concurrency: int = 50
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def transfer_timeout(self) -> float:
        """For pushing binaries: slow links get at least two minutes."""
        return max(self.command_timeout, 120.0)


async def ssh_options(deps: Deps, password: str | None = None, retry: RetryPolicy | None = None) -> SshOptions:
    settings = await get_settings(deps)
    return SshOptions(
        concurrency=settings.ssh_concurrency,
        connect_timeout=settings.ssh_connect_timeout,
        command_timeout=settings.ssh_command_timeout,
        retry=retry or RetryPolicy(),
        password=password,
    )


def select_servers(deps: Deps, names: Iterable[str] | None) -> list[Server]:
    """The named servers (all must exist, else nothing is done), or every
    server when ``names`` is None. Each at most once, in the order given."""
    if names is None:
        return deps.storage.list_servers()
    chosen: dict[str, Server] = {}
    for name in names:
        if name in chosen:
            continue
        server = deps.storage.get_server(name)
        if server is None:
            raise errors.ServerNotFound(name)
        chosen[name] = server
    return list(chosen.values())


def ssh_target(deps: Deps, server: Server, options: SshOptions) -> SshTarget:
    key_name = server.ssh_key or deps.storage.load_settings().get("default_ssh_key")
    key_path = None
    if key_name:
        key = deps.storage.get_key(str(key_name))
        if key is None:
            raise errors.SshError(server.name, f"its SSH key {key_name!r} no longer exists",
                                  "see `dc-overview keys list`")
        key_path = key.private_key_path
    elif options.password is None:
        raise errors.NoSshKey(server.name)
    return SshTarget(
        name=server.name, host=server.address, port=server.ssh_port, user=server.ssh_user,
        private_key_path=key_path, password=options.password, pinned_host_key=server.host_key,
    )


@attrs.define
class Session:
    """One open connection to one worker, and what it took to get it."""

    server: Server
    conn: SshConnection
    attempts: int
    pinned_now: bool  # the host key was pinned by this connection


@contextlib.asynccontextmanager
async def open_session(deps: Deps, server: Server, options: SshOptions,
                       log: ContactLog | None = None) -> AsyncIterator[Session]:
    """Connect (retrying dropped logins), pin the host key if none was (through
    ``log`` when given, with the operation's other writes), yield."""
    if deps.ssh is None:
        raise errors.SshUnavailable()
    target = ssh_target(deps, server, options)
    async with contextlib.AsyncExitStack() as stack:
        attempt = 1
        while True:
            try:
                conn = await stack.enter_async_context(deps.ssh.connect(target, timeout=options.connect_timeout))
                break
            except errors.SshError as exc:
                if not exc.retryable or attempt >= options.retry.attempts:
                    if exc.retryable:
                        exc.message += f" ({attempt} attempts)"
                    raise
                await asyncio.sleep(options.retry.delay(attempt))
                attempt += 1
        pinned_now = False
        if server.host_key is None and conn.host_key:
            if log is not None:
                log.pin(server, conn.host_key)
                server = attrs.evolve(server, host_key=conn.host_key)
            else:
                server = pin_host_key(deps, server, conn.host_key)
            pinned_now = True
        yield Session(server=server, conn=conn, attempts=attempt, pinned_now=pinned_now)


def pin_host_key(deps: Deps, server: Server, host_key: str) -> Server:
    """Trust on first use: store the key the worker offered, unless another
    connection pinned one meanwhile."""
    with deps.storage.transaction():
        current = deps.storage.get_server_by_id(server.id) if server.id is not None else None
        if current is None:
            return attrs.evolve(server, host_key=host_key)
        if current.host_key is None:
            current = deps.storage.update_server(attrs.evolve(current, host_key=host_key))
        return current


# -- what an error means for the server ---------------------------------------------------

OUTCOMES: tuple[tuple[type[Exception], str, ServerStatus], ...] = (
    (errors.HostKeyChanged, "host_key_changed", ServerStatus.ERROR),
    (errors.SshAuthFailed, "auth_failed", ServerStatus.AUTH_FAILED),
    (errors.HostUnreachable, "unreachable", ServerStatus.OFFLINE),
    (errors.ConnectionDropped, "dropped", ServerStatus.ERROR),  # sshd answered, but kept hanging up
    (errors.CommandTimeout, "timeout", ServerStatus.ERROR),
    (errors.NoSshKey, "no_key", ServerStatus.ERROR),
)


def outcome_of(exc: BaseException) -> tuple[str, ServerStatus]:
    """A short result word and the status a failure gives the server."""
    for kind, word, status in OUTCOMES:
        if isinstance(exc, kind):
            return word, status
    return "failed", ServerStatus.ERROR


def describe(exc: BaseException) -> str:
    """One line for the summary table: the message and what to do."""
    if isinstance(exc, errors.SshError):
        text = exc.message.partition(": ")[2] or exc.message
        return f"{text} ({exc.hint})" if exc.hint else text
    if isinstance(exc, errors.DcOverviewError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


@attrs.frozen
class Contact:
    """What one operation learned about one server: its status, when it was
    last seen, other fields to set, and a host key to pin if none is yet."""

    server_id: int
    status: ServerStatus | None = None
    seen: datetime | None = None
    changes: Mapping[str, object] = attrs.field(factory=dict)
    pin: str | None = None


def store_contacts(deps: Deps, contacts: Sequence[Contact]) -> None:
    """Store many contacts in one transaction, each on the stored row as it
    is now (not the copy the operation started with, so edits made meanwhile
    stay); a server removed meanwhile is skipped."""
    if not contacts:
        return
    with deps.storage.transaction():
        updated: dict[int, Server] = {}
        for contact in contacts:
            current = updated.get(contact.server_id) or deps.storage.get_server_by_id(contact.server_id)
            if current is None:  # removed meanwhile
                continue
            changes = dict(contact.changes)
            if contact.status is not None:
                changes["status"] = contact.status
            if contact.seen is not None:
                changes["last_seen"] = contact.seen
            if contact.pin is not None and current.host_key is None:  # unless pinned meanwhile
                changes["host_key"] = contact.pin
            updated[contact.server_id] = attrs.evolve(current, **changes)
        deps.storage.update_servers(list(updated.values()))


def record_contact(deps: Deps, server: Server, *, status: ServerStatus | None, seen: datetime | None,
                   **changes: object) -> Server | None:
    """Store what one operation learned about one server, now."""
    if server.id is None:
        return None
    store_contacts(deps, [Contact(server.id, status, seen, changes)])
    return deps.storage.get_server_by_id(server.id)


class ContactLog:
    """What a fleet operation learns about its servers, stored in batches
    instead of one transaction (and one disk sync) per server in the event
    loop: at most ``interval`` seconds after the first waiting contact, at
    once when ``batch`` are waiting, and whatever is left when the operation
    ends, finished, failed or cancelled (``with ContactLog(deps) as log:``).
    A batch that cannot be stored stays for the next try; the last one's
    error is raised."""

    def __init__(self, deps: Deps, *, interval: float = 0.5, batch: int = 500) -> None:
        self.deps = deps
        self.interval = interval
        self.batch = batch
        self._waiting: list[Contact] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, server: Server, *, status: ServerStatus | None, seen: datetime | None,
               **changes: object) -> None:
        if server.id is not None:
            self._add(Contact(server.id, status, seen, changes))

    def pin(self, server: Server, host_key: str) -> None:
        """Trust on first use: the key the worker offered, unless another
        connection pinned one meanwhile."""
        if server.id is not None:
            self._add(Contact(server.id, pin=host_key))

    def _add(self, contact: Contact) -> None:
        self._waiting.append(contact)
        if len(self._waiting) >= self.batch:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self._flush_on_time)
            except RuntimeError:  # no event loop: nothing to wait for
                self.flush()

    def _flush_on_time(self) -> None:
        self._timer = None
        with contextlib.suppress(Exception):  # kept waiting; the final flush raises it
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        try:
            store_contacts(self.deps, waiting)
        except BaseException:
            self._waiting = waiting + self._waiting
            raise

    def __enter__(self) -> "ContactLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


# -- re-trusting a host ----------------------------------------------------------------


@attrs.frozen
class TrustReport:
    name: str
    forgotten_key: str | None
    forgotten_fingerprint: str | None


async def trust_host(deps: Deps, name: str) -> TrustReport:
    """Forget a server's pinned host key; the next connection pins anew."""
    with deps.storage.transaction():
        server = deps.storage.get_server(name)
        if server is None:
            raise errors.ServerNotFound(name)
        old = server.host_key
        if old is not None:
            deps.storage.update_server(attrs.evolve(server, host_key=None))
    return TrustReport(name=name, forgotten_key=old, forgotten_fingerprint=host_key_fingerprint(old))


def host_key_fingerprint(host_key: str | None) -> str | None:
    if not host_key:
        return None
    try:
        return fingerprint(host_key)
    except errors.InvalidKey:
        return "(not a valid key)"
