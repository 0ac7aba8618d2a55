"""Property-based check of the API against its own OpenAPI schema (schemathesis).

Schemathesis generates requests from /openapi.json, valid and invalid, and checks that none
gets a 5xx, that every status code and body is the one documented, and that invalid input is
rejected. (Its lazy pytest loader does not work with pytest 9, so each operation's strategy is
driven by Hypothesis here.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.http.conftest import LiveServer

OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/stats"),
    ("POST", "/reload"),
    ("GET", "/search/tracks"),
    ("GET", "/users/{user_id}/recommendations"),
    ("GET", "/users/{user_id}/history"),
    ("GET", "/users/{user_id}/explain/{track_id}"),
    ("GET", "/tracks/{track_id}/similar"),
    ("GET", "/tracks/{track_id}"),
    ("POST", "/recommendations"),
]


@pytest.mark.slow  # over 2 s: a whole pipeline or a live server
def test_the_schema_documents_every_operation(live: LiveServer):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_conforms_to_its_schema(live: LiveServer, method: str, path: str):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()

    check()
