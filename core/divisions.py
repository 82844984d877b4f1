"""Division codes that need special care (GB/T 2260 changes over time)."""
from __future__ import annotations

#: Abolished divisions still seen inside old ID numbers: code -> (name, merged into code, name, year).
ABOLISHED = {
    "371200": ("莱芜市", "370100", "济南市", 2019),  # merged into Jinan in January 2019
}


def abolished_hint(code: str) -> str | None:
    """A sentence explaining an abolished division code, or ``None``."""
    if code not in ABOLISHED:
        return None
    name, into, into_name, year = ABOLISHED[code]
    return f"division {code} ({name}) was abolished in {year} and merged into {into} ({into_name})"
