"""Use cases for fleet-wide settings."""

from __future__ import annotations

from typing import Any

import attrs

from . import errors
from .domain import SETTING_NAMES, Settings, change_setting
from .ports import Deps


async def get_settings(deps: Deps) -> Settings:
    stored = {k: v for k, v in deps.storage.load_settings().items() if k in SETTING_NAMES}
    try:
        return Settings(**stored)
    except errors.DcOverviewError as exc:
        raise errors.StorageError(f"a stored setting is invalid: {exc}", "set it again with `dc-overview settings set`") from None


async def get_setting(deps: Deps, name: str) -> Any:
    if name not in SETTING_NAMES:
        raise errors.InvalidSetting(name, "unknown setting", "known settings: " + ", ".join(SETTING_NAMES))
    return getattr(await get_settings(deps), name)


async def set_setting(deps: Deps, name: str, value: Any) -> Settings:
    with deps.storage.transaction():
        current = await get_settings(deps)
        updated = change_setting(current, name, value)
        new_value = getattr(updated, name)
        if name == "default_ssh_key" and new_value is not None and deps.storage.get_key(new_value) is None:
            raise errors.InvalidSetting(name, f"no SSH key named {new_value!r}", "see `dc-overview keys list`")
        deps.storage.save_setting(name, new_value)
    return updated


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    return attrs.asdict(settings)
