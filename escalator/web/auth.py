"""What every HTTP surface shares: the bearer-token check and JSON errors (bodies are read,
capped and timed once, by the edge guard in web/limits.py).

Routers declare `Depends(bearer(token))`; an `ApiError` raised anywhere becomes
`{"error": ...}` with its status, as do the service layer's refusals (422, 404) and a
store that is down (503, which Alertmanager and the CLI retry).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from escalator.services.context import NotFound, ServiceError
from escalator.store.db import STORE_ERRORS

log = logging.getLogger("escalator.web")


class ApiError(Exception):
    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def error(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=code)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorized(request: Request, token: str | None) -> bool:
    """Bearer token in constant time; with no token set, loopback clients only."""
    if token is None:
        return is_loopback(request.client.host if request.client else None)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def bearer(token: str | None) -> Callable[[Request], None]:
    """A route dependency: 401 unless the request carries `token` (see `authorized`)."""

    def check(request: Request) -> None:
        if not authorized(request, token):
            raise ApiError(401, "missing or wrong bearer token")

    return check


def validation_details(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}" for err in exc.errors()
    ][:20]


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error(exc.code, exc.message, **exc.extra)

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        return error(404 if isinstance(exc, NotFound) else 422, str(exc))

    async def store_down(_request: Request, exc: Exception) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        return error(503, "store unavailable, retry later")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ServiceError, refused)
    for store_error in STORE_ERRORS:  # the driver's errors and an exhausted pool alike
        app.add_exception_handler(store_error, store_down)
