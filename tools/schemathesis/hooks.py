"""Schemathesis hooks for the contract run (scripts/contract.sh sets SCHEMATHESIS_HOOKS).

A real client never reuses an Idempotency-Key for a different request: the server answers
such a reuse 422, as the IETF draft says. The fuzzer draws keys from small sets (examples,
boundary values), so it would reuse one key for many bodies. Here a valid key that was
already sent with another body is swapped for a fresh one; a replay (same key, same body)
and every invalid key (negative tests) go out unchanged.
"""

import json
import re
import uuid

import schemathesis

KEY_PATTERN = re.compile(
    r'^(?:[\x21\x23-\x7e](?:[\x20\x21\x23-\x7e]{0,253}[\x21\x23-\x7e])?'
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}")$'
)

# (method, path, key) -> the body first sent with it
_first_body = {}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None:
        return
    key = headers[name]
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        return
    body = json.dumps(case.body, sort_keys=True, default=str)
    scope = (case.method, case.operation.path.rstrip("/"), key)
    first = _first_body.setdefault(scope, body)
    if first != body:
        headers[name] = f"contract-{uuid.uuid4()}"
        case.headers = headers
