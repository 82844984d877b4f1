"""The hook specifications of essc-adapters: the contract between the framework and
city plugins. Each docstring here is the reference documentation of its hook.

A city plugin is a Python package with a ``manifest.json`` beside its ``__init__.py``
and at least :func:`essc_register_adapters`. Implement hooks with the marker
``essc.core.hookimpl``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import CityAdapter
    from .errors import EsscError
    from .settings import PluginContext

hookspec = pluggy.HookspecMarker("essc")


@hookspec
def essc_register_adapters(register: Callable[[str, CityAdapter], None], context: PluginContext) -> None:
    """Register one adapter object for each city the plugin serves.

    Called once, when the plugin is first needed (the registry is lazy). Call
    ``register(city_code, adapter)`` once per city in your manifest; one adapter object
    may serve several cities (a provincial system).

    :param register: callback ``register(city_code: str, adapter: CityAdapter)``.
    :param context: this plugin's settings: ``name``, ``cities`` (from the manifest),
        ``base_url``, ``credentials``, ``timeouts`` and a masked ``logger``.
    :return: nothing; register through the callback.
    """


@hookspec
def essc_adapter_called(city: str, operation: str, plugin: str, elapsed_s: float,
                        error: EsscError | None) -> None:
    """Observe every adapter call after it finished (metrics, tracing, alerting).

    Only called when some plugin implements it; keep it fast, it runs on the hot path.

    :param city: the 6-digit city code called.
    :param operation: the contract operation (``read_card``, ``activate``...).
    :param plugin: name of the plugin that served the call.
    :param elapsed_s: wall time of the adapter call in seconds.
    :param error: the typed error the call ended with, or ``None`` on success.
    :return: nothing.
    """


@hookspec
def essc_plugin_quarantined(name: str, reason: str) -> None:
    """Be told that a plugin was quarantined (for alerting the regional team).

    :param name: the quarantined plugin's name.
    :param reason: why, in one line (no personal data).
    :return: nothing.
    """
