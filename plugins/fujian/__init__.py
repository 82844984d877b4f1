"""福建 e-SSC plugin (pinyin-form): serves 福州 350100."""
from __future__ import annotations

from essc.core import hookimpl

from .adapter import FujianAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = FujianAdapter(context)
    for city in context.cities:
        register(city, adapter)
