"""A property-based run of the OpenAPI schema (schemathesis) against the running service, with an
admin's key and a bounded number of examples per operation: no 500, no response that breaks the
schema (status, content type, body)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 12  # per operation: ~45 operations, so CI stays fast


def test_no_request_breaks_the_service_or_its_schema(server, api_home):
    # schemathesis's own pytest loader does not run under pytest 9: its strategies are driven here.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {api_home['keys']['boss']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures = []
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            # The fuzzer must not revoke or replace the keys the other tests hold.
            if "researcher_id" in (case.path_parameters or {}):
                case.path_parameters = {**case.path_parameters, "researcher_id": "fuzzed-researcher"}
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.call_and_validate(headers=headers, checks=checks)

        try:
            fuzz()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
        assert calls.get(operation.label), f"{operation.label} was never called: {failures[-1:]}"
    assert not failures, "\n\n".join(failures)
