"""Property-based tests of the whole API from its OpenAPI document (schemathesis).

Every operation gets a bounded number of generated requests (valid and invalid), checked by
every check schemathesis has (``st run --checks all``): no 5xx, no stack trace, status
codes, headers and bodies as the document declares them, schema-valid requests accepted
and schema-violating ones refused (the document says what the server accepts; the few
expectations it cannot express are in ``schemathesis.toml``), ``Allow`` on 405, auth not
ignored. Endless event streams are left out (they are tested in test_sse.py).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from tests.server.conftest import TOOLS, WORKSPACE
from workbench.engine import Engine
from workbench.server import ServerConfig, ServerThread

TOKEN = "fuzz-token"

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
"""Every check schemathesis has, as ``--checks all`` runs them."""


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "workbench.yaml").write_text(textwrap.dedent(WORKSPACE))
    (root / "tools.py").write_text(TOOLS)
    engine = Engine.open(root, f"sqlite:///{root / 'wb.db'}")
    with ServerThread(engine, ServerConfig(port=0, token=TOKEN, decision_wait=0.2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: ServerThread) -> Any:
    return schemathesis.openapi.from_url(
        fuzzed_server.url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )


# endless event streams never answer completely
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/stream$")


def no_stack_trace(ctx: Any, response: Any, case: Any) -> bool | None:
    """No answer leaks a Python traceback or internals."""
    text = response.text
    for leak in ("Traceback (most recent call last)", 'File "/', "sqlalchemy.", "sqlite3."):
        if leak in text:
            raise AssertionError(f"the answer shows internals ({leak!r}): {text[:300]}")
    if response.status_code >= 400 and response.headers.get("content-type", [""])[0].startswith(
        "application/json"
    ):
        body = response.json()
        if not (isinstance(body, dict) and isinstance(body.get("error", {}).get("message"), str)):
            raise AssertionError(f"an error without a message: {text[:300]}")
    return None


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_holds_up(case: Any, fuzzed_server: ServerThread) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[*ALL_CHECKS, no_stack_trace],
        timeout=30,
    )
