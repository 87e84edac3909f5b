"""An ASGI app served by uvicorn in a thread on a free loopback port, for tests that need
a real HTTP server in-process (the CLI's --server path, the calendar URL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from escalator.engine.runner import wait_until
from tests.support.ports import free_port


@contextmanager
def running_server(app: object, port: int | None = None, **options: Any) -> Iterator[str]:
    """Yield the server's base URL; stop it (lifespan and all) on exit. `options` go to
    uvicorn.Config (`serve`'s own, from escalator.web.server.uvicorn_options, say)."""
    port = port or free_port()
    settings: dict[str, Any] = {"log_level": "warning", **options}
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, **settings)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout=30), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()
