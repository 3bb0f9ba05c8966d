"""docs/openapi.yaml and docs/web.md are kept true: the app's router and
the documents list the same routes, both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dc_overview.frontends.web_app import create_app

from tests.support.web import open_fleet

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def routes(tmp_path):
    fleet = open_fleet(tmp_path)
    app = create_app(fleet)
    found = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource}
    yield found
    fleet.deps.storage.close()


def api_routes(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(m, p) for m, p in routes if p.startswith("/api/") or p == "/metrics"}


def test_the_openapi_document_lists_exactly_the_api_routes(routes):
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item if method in METHODS}
    served = api_routes(routes)
    assert served - documented == set(), "served but not in docs/openapi.yaml"
    assert documented - served == set(), "in docs/openapi.yaml but not served"


def test_every_documented_operation_says_what_it_answers(routes):
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            assert operation.get("summary"), (method, path)
            codes = set(operation["responses"])
            assert any(c.startswith("2") for c in codes), (method, path)
            public = operation.get("security") == [] or {} in (operation.get("security") or [{}])
            if not public:
                assert "401" in codes, f"{method} {path} needs a login but documents no 401"
            if "{id}" in path:
                assert "404" in codes, (method, path)


def test_docs_web_md_names_every_route(routes):
    text = (ROOT / "docs" / "web.md").read_text()
    missing = sorted(f"{m} {p}" for m, p in routes if p != "/static" and not re.search(
        rf"`{re.escape(m)} {re.escape(p)}`", text))
    assert not missing, f"routes missing from docs/web.md: {missing}"
