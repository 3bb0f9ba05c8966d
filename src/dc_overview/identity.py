"""Who may use the web app and the API: users with a role, their API tokens
and their login sessions. Frozen values, validated on construction; nothing
here does I/O. Secrets (passwords, tokens, session ids) never live in these
values: only their hashes do, and those are left out of reprs."""

from __future__ import annotations

import enum
import re
from datetime import datetime

import attrs

from . import errors

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_TOKEN_LABEL = re.compile(r"^[\w .:@/+-]{1,64}$")


class Role(str, enum.Enum):
    """``admin`` may change anything; ``viewer`` may only look."""

    ADMIN = "admin"
    VIEWER = "viewer"


ROLE_NAMES = tuple(r.value for r in Role)


def check_username(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not _USERNAME.match(value):
        raise errors.InvalidInput(
            field,
            f"{value!r} is not a valid user name",
            "use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return value


def check_password(value: object, field: str = "password") -> str:
    if not isinstance(value, str):
        raise errors.InvalidInput(field, "a password is required")
    if len(value) < MIN_PASSWORD:
        raise errors.InvalidInput(field, f"is too short ({len(value)} characters)", f"use at least {MIN_PASSWORD}")
    if len(value) > MAX_PASSWORD:
        raise errors.InvalidInput(field, "is too long", f"use at most {MAX_PASSWORD} characters")
    if not value.isprintable():
        raise errors.InvalidInput(field, "contains control characters")
    return value


def check_role(value: object, field: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise errors.InvalidInput(field, f"{value!r} is not a role", "roles: " + ", ".join(ROLE_NAMES)) from None


def check_token_label(value: object, field: str = "label") -> str:
    if not isinstance(value, str) or not _TOKEN_LABEL.match(value):
        raise errors.InvalidInput(field, f"{value!r} is not a valid token label", "1-64 letters, digits, spaces or _ . : @ / + -")
    return value


def _validate(check):
    def validator(instance: object, attribute: attrs.Attribute, value: object) -> None:
        check(value, attribute.name)

    return validator


@attrs.frozen
class User:
    name: str = attrs.field(validator=_validate(check_username))
    role: Role = attrs.field(converter=check_role)
    password_hash: str = attrs.field(repr=False, default="")
    created_at: datetime | None = None
    id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@attrs.frozen
class ApiToken:
    """A Bearer token for automation. ``prefix`` (the first characters of the
    token) lets people tell tokens apart; the token itself is shown once."""

    user_id: int
    label: str = attrs.field(validator=_validate(check_token_label))
    token_hash: str = attrs.field(repr=False)
    prefix: str
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    user_name: str | None = None
    id: int | None = None


@attrs.frozen
class LoginSession:
    user_id: int
    token_hash: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    id: int | None = None
