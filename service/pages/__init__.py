"""The pages people use, served by ``essc serve`` beside the JSON API: the citizen's
activation pages opened from a channel (``/h5``, essc.service.pages.h5) and the operator
console (``/console``). Server-rendered Jinja templates, zh-CN, mobile-first, with a little
static JavaScript as progressive enhancement.

Channels build launch URLs and check returns with :mod:`essc.service.pages.launch`
(docs/launch.md), which imports nothing of Flask.
"""
from .launch import build_launch_url, verify_return
from .wiring import init_pages, page_routes

__all__ = ["build_launch_url", "verify_return", "init_pages", "page_routes"]
