"""Airlock's own Schemathesis check, loaded with SCHEMATHESIS_HOOKS=airlock_checks.

Every error answer of the API (4xx and 5xx) must be the one documented shape
{"error": {"code": str, "message": str}} with a JSON content type (host/src/api/errors.rs).
"""

import json

import schemathesis


@schemathesis.check
def airlock_error_shape(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered with content-type {content_type!r}, not JSON"
    )
    try:
        body = json.loads(response.content or b"null")
    except ValueError as e:
        raise AssertionError(f"{response.status_code} body is not JSON: {e}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} body has no error object: {body!r}"
    assert isinstance(error.get("code"), str) and error["code"], f"error.code missing: {body!r}"
    assert isinstance(error.get("message"), str), f"error.message missing: {body!r}"
    return None
