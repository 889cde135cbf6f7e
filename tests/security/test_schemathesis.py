"""Schemathesis over ``/openapi.json``: no response ≥ 500, and every response as documented.

Against the app on SQLite with the demo's data (:func:`cryocurate.demo.build_demo`: two
datasets, six class-2D runs, three accounts and a campaign), in process (ASGI), as three
callers: anonymous, the demo labeller with an API token, the demo admin with an API token.
Every operation gets ``EXAMPLES`` generated requests that fit the spec (positive) and as many
that do not (negative); each request is sent as each caller. Checks: no 5xx, the status code
and content type documented for the operation, the body matching the documented schema,
invalid requests refused (``offset: false``), valid ones not refused with a 400 (the filter
language's ``where`` excepted: see ``check``). ``CRYOCURATE_SCHEMATHESIS_EXAMPLES`` changes the
number of examples (25: about three minutes on two shared cores, 69 operations).

Bounded: derandomized, no example database. Marked ``slow``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis  # the test extra: a missing install is an error, never a skip
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks as st_checks
from schemathesis.generation import GenerationMode

from cryocurate import accounts
from cryocurate.demo import build_demo
from cryocurate.portal import Portal
from cryocurate.web.app import create_app

EXAMPLES = int(os.environ.get("CRYOCURATE_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.negative_data_rejection,
    st_checks.positive_data_acceptance,
]


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict[str, str]]]:
    root = build_demo(tmp_path_factory.mktemp("schemathesis") / "demo", report=lambda _: None)
    callers: dict[str, dict[str, str]] = {"anonymous": {}}
    with Portal.open(root) as portal, portal.transaction() as s:
        for email in ("labeller@demo.local", "admin@demo.local"):
            token = accounts.create_api_token(s, accounts.get_user(s, email), "schemathesis")
            callers[email.split("@")[0]] = {"Authorization": f"Bearer {token}"}
    return create_app(root), callers


def _run(operation: Any, mode: GenerationMode, callers: dict[str, dict[str, str]]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "where" in case.body:
            # A filter's validity (field names, operators, values of the field's type) is more
            # than JSON Schema says of an object: a random one is refused, rightly, with a 400
            # (tests/web/test_api.py checks those refusals). Valid data here: no filter.
            case.body["where"] = {}
        for headers in callers.values():
            sent = {**(case.headers or {}), **headers}
            response = case.call(headers=sent)
            case.validate_response(response, checks=CHECKS, headers=sent)

    check()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_spec_mismatch(demo_app) -> None:
    app, callers = demo_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    problems: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode, callers)
            except Unsatisfiable:
                pass  # nothing to vary (no parameters): no invalid request to make
            except (Exception, BaseExceptionGroup) as err:  # one line per operation; all reported
                lines = [line.strip() for line in str(err).splitlines() if line.strip()]
                said = [line for line in lines if "error" in line or "curl" in line]
                problems.append(f"{operation.label} [{mode.value}]: {' | '.join(lines[:4] + said)}")
    assert operations >= 60
    assert not problems, f"{len(problems)} operations failed:\n" + "\n".join(problems)
