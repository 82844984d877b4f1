"""Generate the hook reference (``docs/hooks.md``) from ``core/hookspecs.py``.

    python -m essc.core.docs > docs/hooks.md

A test fails when the committed file differs from what this prints, so the reference
can never drift from the contract.
"""
from __future__ import annotations

import inspect

from . import hookspecs


def hooks() -> list:
    return [f for name, f in sorted(vars(hookspecs).items())
            if name.startswith("essc_") and callable(f) and hasattr(f, "essc_spec")]


def signature(func) -> str:
    return f"{func.__name__}({', '.join(inspect.signature(func).parameters)})"


def hook_reference() -> str:
    lines = ["# Hook reference", "",
             "Generated from `core/hookspecs.py` by `python -m essc.core.docs`; do not edit by hand.", "",
             "Implement hooks in your plugin package's `__init__.py` with the `essc.core.hookimpl` marker.", ""]
    for func in hooks():
        lines += [f"## {signature(func)}", "", inspect.cleandoc(func.__doc__ or "UNDOCUMENTED"), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(hook_reference(), end="")
