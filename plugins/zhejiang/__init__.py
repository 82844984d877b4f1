"""浙江 e-SSC plugin (rest-json): one provincial adapter serves 杭州 330100 and 湖州 330500."""
from __future__ import annotations

from essc.core import hookimpl

from .adapter import ZhejiangAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = ZhejiangAdapter(context)
    for city in context.cities:
        register(city, adapter)
