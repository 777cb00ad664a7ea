"""Schemathesis (PyPI) against the served OpenAPI document: no 5xx, every response conforms.

Every operation of the document the running app serves (``/api/v1/openapi.json``) with
positive and negative (schema-violating) inputs from Schemathesis' strategies, as the
admin and as a read-only street office. The live feed is left out: an event stream never ends.

Requests are sent with ``requests`` and judged by Schemathesis' own checks
(``case.validate_response``): in this virtualenv ``urllib3-future`` (pulled in by
``grafana-client`` through ``niquests``) replaces ``urllib3`` and breaks the connection
bookkeeping of Schemathesis' built-in transport, so its CLI cannot run here (and its
pytest plugin trips over pytest 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings

from eventlog.envelope import Envelope
from tests.console.conftest import Stack, running_stack

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, traffic: list[Envelope]) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("schemathesis"), traffic[: len(traffic) // 3]
    ) as stack:
        yield stack


SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(
    ("token", "mode"), [("admin", "positive"), ("admin", "negative"), ("office_a", "positive")]
)
def test_no_server_error_and_every_response_conforms(served: Stack, token: str, mode: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json").exclude(
        path="/api/v1/stream"
    )
    auth = {"Authorization": f"Bearer {served.tokens[token]}"}
    doc = requests.get(f"{served.url}/api/v1/openapi.json", timeout=10).json()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    if mode == "negative":  # only operations with inputs can be given invalid ones
        operations = [
            o
            for o in operations
            if {"parameters", "requestBody"} & set(doc["paths"][o.path][o.method.lower()])
        ]
    calls = 0
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

        @SETTINGS
        @given(case=strategy)
        def check(case: Any) -> None:
            nonlocal calls
            kwargs = case.as_transport_kwargs(base_url=served.url, headers=auth)
            kwargs.pop("stream", None)
            response = requests.request(**{**kwargs, "timeout": 10})
            calls += 1
            case.validate_response(response, checks=CHECKS)

        check()
    assert calls >= 5 * len(operations)
