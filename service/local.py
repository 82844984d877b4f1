"""Embedded defaults for the CLI: a Runtime, plus the mock city systems in-process when
no real city endpoint is configured."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from essc.core.settings import Settings

from .config import ServiceConfig
from .runtime import Runtime


def real_endpoint_configured(settings: Settings) -> bool:
    return bool(os.environ.get("ESSC_CITY_BASE_URL") or settings.endpoints or
                settings.base_url != Settings().base_url)


@contextmanager
def local_runtime(config: ServiceConfig | None = None, *, workers: bool = True, clock: str = "realtime",
                  settings: Settings | None = None) -> Iterator[tuple[Runtime, str | None]]:
    """A Runtime with workers; yields ``(runtime, mock_url or None)``."""
    settings = settings or Settings.from_env()
    server = None
    if not real_endpoint_configured(settings):
        from essc.mockserver import create_app
        from essc.mockserver.serve import start_in_thread

        server = start_in_thread(create_app({"CLOCK_MODE": clock}))
        settings.base_url = server.url
    runtime = Runtime(config or ServiceConfig.from_env(), settings=settings)
    try:
        if workers:
            runtime.start_workers()
        yield runtime, server.url if server else None
    finally:
        runtime.stop_workers()
        runtime.close()
        runtime.store.close()
        if server:
            server.stop()
