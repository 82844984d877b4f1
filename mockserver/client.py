"""A small client of the mock's admin API (docs/mock.md), used by the contract suite."""
from __future__ import annotations

from typing import Any

import requests


class MockAdmin:
    """Drive the mock city systems through ``/__admin/``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.url}/__admin/{path}", timeout=10, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"mock admin {method} {path} -> HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else None

    def reset(self, seed: int | None = None, *, keep_cities: bool = False) -> None:
        """Back to the initial state; ``keep_cities``: the cities added through the admin API stay."""
        body: dict[str, Any] = {} if seed is None else {"seed": seed}
        if keep_cities:
            body["keep_cities"] = True
        self._call("POST", "reset", json=body)

    def cities(self) -> list[dict]:
        return self._call("GET", "cities")

    def set_city(self, code: str, **changes: Any) -> None:
        self._call("PUT", f"cities/{code}", json=changes)

    def add_city(self, **city: Any) -> None:
        self._call("POST", "cities", json=city)

    def citizens(self, city: str, scenario: str | None = None) -> list[dict]:
        params = {"city": city}
        if scenario:
            params["scenario"] = scenario
        return self._call("GET", "citizens", params=params)

    def citizen(self, city: str, scenario: str = "normal") -> dict:
        found = self.citizens(city, scenario)
        if not found:
            raise LookupError(f"the mock has no {scenario} citizen in city {city}")
        return found[0]

    def set_card_status(self, city: str, id_number: str, status: str) -> dict:
        """Change the citizen's card status (``normal`` brings the card back)."""
        return self._call("PUT", f"citizens/{city}/{id_number}", json={"card_status": status})

    def settlements(self, city: str | None = None) -> list[dict]:
        return self._call("GET", "settlements", params={"city": city} if city else {})

    def clock(self) -> dict:
        return self._call("GET", "clock")

    def freeze(self) -> None:
        self._call("POST", "clock", json={"mode": "frozen"})

    def advance(self, seconds: float) -> None:
        self._call("POST", "clock", json={"advance": seconds})

    def fault(self, **rule: Any) -> Any:
        return self._call("POST", "faults", json=rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def journal(self, **filters: str) -> list[dict]:
        return self._call("GET", "journal", params=filters)
