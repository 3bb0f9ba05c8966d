"""JSON at the web app's edge: reading request bodies field by field (every
problem a 400 naming the field), and the views of domain values that the
API returns. Nothing here ever includes a private key or a secret."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dc_overview import errors
from dc_overview.domain import Server, SshKey, check_port
from dc_overview.identity import ApiToken, User

from . import output

MAX_TEXT = 1_000_000


async def json_body(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys."""
    if request.content_type != "application/json":
        raise errors.InvalidInput("body", "send a JSON object with Content-Type: application/json")
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidInput("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise errors.InvalidInput("body", "must be a JSON object")
    for key in body:
        if key not in allowed:
            raise errors.InvalidInput(key, "is not a known field", "known fields: " + ", ".join(allowed))
    _check_text(body, "body")
    return body


def _check_text(value: Any, field: str) -> None:
    """Strings must be storable: valid UTF-8 (no lone surrogates), no NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            raise errors.InvalidInput(field, "contains a NUL character")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise errors.InvalidInput(field, "is not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, field)
            _check_text(item, key if field == "body" else field)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, field)


def text(body: Mapping[str, Any], field: str, *, required: bool = False, nullable: bool = False) -> str | None:
    if field not in body or (body[field] is None and not required):
        if required:
            raise errors.InvalidInput(field, "is required")
        return None
    value = body[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise errors.InvalidInput(field, "must be a string")
    if len(value) > MAX_TEXT:
        raise errors.InvalidInput(field, "is too long")
    return value


def integer(body: Mapping[str, Any], field: str) -> int | None:
    if body.get(field) is None:
        return None
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidInput(field, "must be an integer")
    return value


def port(body: Mapping[str, Any], field: str) -> int | None:
    value = integer(body, field)
    return None if value is None else check_port(value, field)


def boolean(body: Mapping[str, Any], field: str) -> bool | None:
    if body.get(field) is None:
        return None
    if not isinstance(body[field], bool):
        raise errors.InvalidInput(field, "must be true or false")
    return body[field]


def string_map(body: Mapping[str, Any], field: str) -> dict[str, str] | None:
    if body.get(field) is None:
        return None
    value = body[field]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.InvalidInput(field, "must be an object of strings")
    return value


def id_list(body: Mapping[str, Any], field: str) -> list[int] | None:
    if body.get(field) is None:
        return None
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise errors.InvalidInput(field, "must be a list of server ids")
    return value


def path_id(request: web.Request, kind: str, name: str = "id") -> int:
    """A numeric id from the URL; out of range is simply not found."""
    raw = request.match_info[name]
    value = int(raw) if raw.isdigit() and len(raw) < 20 else 0
    if not 0 < value <= 2**63 - 1:
        raise errors.NoSuchRecord(kind, raw)
    return value


# -- views ------------------------------------------------------------------------------------


def server_view(server: Server) -> dict[str, Any]:
    return output.json_converter.unstructure(server)


def key_view(key: SshKey) -> dict[str, Any]:
    return output.public_key_view(key)


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role.value,
            "created_at": user.created_at.isoformat() if user.created_at else None}


def token_view(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id, "label": token.label, "prefix": token.prefix, "user": token.user_name,
        "created_at": token.created_at.isoformat() if token.created_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def jsonable(value: Any) -> Any:
    return output.to_jsonable(value)


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(value, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
