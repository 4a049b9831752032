"""The OpenAPI document, and schemathesis fuzzing of the WSGI app against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .support import HubEnv, build_hub, device

# -- the document ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(module_hub: HubEnv) -> dict[str, Any]:
    resp = module_hub.client().get("/api/openapi.json")
    assert resp.status_code == 200
    return json.loads(resp.data)


def test_the_document_is_valid_openapi_3(spec: dict[str, Any]) -> None:
    # schemathesis ships the official OpenAPI meta-schemas (no network, no extra package)
    import jsonschema_rs
    from schemathesis.specs.openapi.definitions import OPENAPI_30, OPENAPI_31

    assert spec["openapi"].startswith("3.")
    meta = OPENAPI_31 if spec["openapi"].startswith("3.1") else OPENAPI_30
    errors = [f"{list(e.instance_path)}: {e.message}" for e in jsonschema_rs.validator_for(meta).iter_errors(spec)]
    assert not errors, errors[:10]
    schemathesis.openapi.from_dict(spec).validate()
    # the meta-schema catches structure; make sure it is not vacuous for us
    assert not jsonschema_rs.validator_for(meta).is_valid({**spec, "paths": {"/x": {"get": {"responses": 5}}}})


def _flask_to_openapi(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented(module_hub: HubEnv, spec: dict[str, Any]) -> None:
    missing = []
    for rule in module_hub.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = _flask_to_openapi(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, missing


def test_every_documented_error_is_problem_json(spec: dict[str, Any]) -> None:
    wrong = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, resp in op.get("responses", {}).items():
                if not str(status).startswith(("4", "5")):
                    continue
                content = resp.get("content", {})
                if list(content) != ["application/problem+json"]:
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(content)}")
    assert not wrong, "\n".join(wrong)


def test_protected_operations_declare_their_security(spec: dict[str, Any]) -> None:
    public = {
        ("get", "/api/v1/hub"), ("get", "/api/v1/session"), ("post", "/api/v1/auth/login"), ("post", "/api/v1/devices/enrol"),
        ("get", "/healthz"), ("get", "/readyz"),
    }
    assert not spec.get("security"), "no global requirement: each operation states its own"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if (method, path) in public:
                assert not op.get("security"), (method, path)
            elif path.startswith("/api/v1/"):
                assert op.get("security"), (method, path)
                assert "401" in op["responses"], (method, path)


# -- fuzzing -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_env(template: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    h = build_hub(template, tmp_path_factory.mktemp("fuzz") / "data")
    tablet = h.enrol(name="fuzz-tablet")
    return {"hub": h, "headers": {"Authorization": f"Bearer {h.staff_token('admin')}", **device(tablet.token)}}


def test_fuzzing_finds_no_server_errors_and_only_documented_statuses(fuzz_env: dict[str, Any]) -> None:
    """Every operation, a dozen generated requests each, with an admin session and a device token."""
    from hypothesis import given
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_env["hub"].app)
    # The live stream never ends, and logout would end the fuzzer's own session.
    schema = schema.exclude(path="/api/v1/events").exclude(path="/api/v1/auth/logout")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
        def run(case: Any) -> None:
            resp = case.call(headers=fuzz_env["headers"])
            try:
                case.validate_response(resp, checks=[not_a_server_error, status_code_conformance, content_type_conformance])
            except Exception as exc:  # collect every operation's findings, then fail once
                failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:400]}")
                raise

        try:
            run()
        except Exception:
            pass
    assert operations >= 18
    assert not failures, "\n\n".join(failures)


def test_fuzzing_left_the_database_consistent(fuzz_env: dict[str, Any]) -> None:
    h: HubEnv = fuzz_env["hub"]
    assert h.sql("PRAGMA integrity_check")[0][0] == "ok"
    assert h.sql("PRAGMA foreign_key_check") == []
    assert Path(h.config.db_path).exists()
