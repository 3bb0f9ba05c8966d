"""The Jinja2 templates of the stack's config files (``templates/stack/``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # only when a config is rendered: the other commands start without it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("dc_overview.templates", "stack"),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, never an empty string
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(["html.j2"], default_for_string=False, default=False),
    )


def render(name: str, **values: object) -> str:
    return _environment().get_template(name).render(**values)
