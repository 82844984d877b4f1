"""MOHRSS national gateway plugin (xml-envelope): one adapter serves every city of the national
card-holder base (青岛, 深圳, 白杨市, 北京, 上海, 乌鲁木齐; 三沙, 香港, 澳门 not opened)."""
from __future__ import annotations

from essc.core import hookimpl

from .adapter import MohrssAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = MohrssAdapter(context)
    for city in context.cities:
        register(city, adapter)
