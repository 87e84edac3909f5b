"""What the OpenAPI schema says about answers and bodies the routes do not declare in code.

`ERRORS(401, 413, ...)` documents error answers (every router passes its own set, plus
`GUARD`: the answers web/limits.py gives before a route runs), and `json_body` / `form_body`
describe request bodies the routes read themselves (the webhook, Events API v2, Twilio's
and Slack's forms), so `/openapi.json` is a complete contract a client (or schemathesis)
can be checked against.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_REASONS = {
    400: "Malformed request: not JSON, not UTF-8, nested too deep, a number too long.",
    401: "Missing or wrong bearer token.",
    403: "Refused: bad signature, a Host that is not this daemon, a cross-site request.",
    404: "No such object.",
    405: "Method not allowed on this path.",
    408: "The body did not arrive within server.body_timeout.",
    413: "Body larger than the configured limit.",
    415: "Content-Encoding not accepted (bodies are never compressed).",
    422: "Well-formed but invalid: the reasons name the fields.",
    429: "Rate limited: retry later.",
    503: "The store is unavailable: retry later.",
}

# What the guard (web/limits.py) can answer on any route, before the route runs.
GUARD = (400, 403, 408, 413, 415)

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "details": {"type": "array", "items": {"type": "string"}},
    },
}


def ERRORS(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these status codes and the guard's, each with its reason."""
    return {
        code: {
            "description": _REASONS[code],
            "content": {"application/json": {"schema": _ERROR}, "text/plain": {}},
        }
        for code in sorted({*codes, *GUARD})
    }


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with its `#/$defs/...` references replaced by the definitions themselves
    (an openapi_extra body cannot add to the document's components)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra` for a route that parses its JSON body itself (strictly, see bodies.py)."""
    schema = model.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "description": description,
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }


def free_json_body(description: str) -> dict[str, Any]:
    """`openapi_extra` for a JSON object body validated by the route's own parser."""
    return {
        "requestBody": {
            "description": description,
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }


def form_body(fields: dict[str, str], description: str) -> dict[str, Any]:
    """`openapi_extra` for a signed application/x-www-form-urlencoded body (Twilio, Slack)."""
    return {
        "requestBody": {
            "description": description,
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", "description": text}
                            for name, text in fields.items()
                        },
                    }
                }
            },
        }
    }
