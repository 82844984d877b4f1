"""四川 e-SSC plugin (gm-json, SM4 + SM3): serves 成都 510100."""
from __future__ import annotations

from essc.core import hookimpl

from .adapter import SichuanAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = SichuanAdapter(context)
    for city in context.cities:
        register(city, adapter)
