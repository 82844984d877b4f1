"""Quality tiers of a city plugin, computed from the contract suite's outcomes.

A tier is earned by evidence: the outcomes of the contract checks over every city of the
plugin that the run covered.

========  ===================================================================================
tier      requirements (each one on top of the tier below)
========  ===================================================================================
bronze    ``test_manifest_valid``, ``test_capabilities_implemented``, ``test_happy_path``
silver    every failure mapping: ``test_city_not_opened``, ``test_delayed_sync``,
          ``test_card_status`` (every abnormal status), ``test_identity_mismatch``; and each
          operation of contract 1.2 the plugin declares (:data:`OPERATION_CHECKS`: its answers
          and its failure mappings, e.g. ``test_settle_medical``)
gold      fault handling: ``test_upstream_fault`` (every fault kind, the hang/timeout one
          included); ``test_no_personal_data_in_logs``; and ``docs``: the manifest has a
          non-empty ``description``
platinum  ``test_recorded_conformance``: cassettes recorded against the city's own test system
          (``essc record``) replay as recorded, against the adapter and the mock's dialect,
          and cover the happy path and each business error (docs/dialect-specs.md)
========  ===================================================================================

A plugin that misses a bronze requirement is ``none``; one without a report is ``unrated``.
A check of :data:`OPERATION_CHECKS` is a requirement only of a plugin that declares its
operation in ``capabilities.operations`` (:func:`compute_tier`'s ``operations``); for the
others it does not apply (it skips with "not declared: ...").

How an outcome counts for a check requirement (every city x every variant of the check,
e.g. each card status):

* ``pass`` counts as passed;
* ``skipped`` (e.g. a city that has not opened the service skips the happy path) counts
  neither for nor against the plugin - but a requirement needs at least one pass (or valid
  exemption) over the plugin's cities: a tier is never earned by skips alone;
* ``exempt`` counts as passed only with a written reason (>= 10 characters) from the
  manifest's ``exemptions`` (check name -> reason); :data:`NOT_EXEMPTIBLE` checks cannot be
  exempted: ``test_manifest_valid`` (the manifest carrying the exemptions must itself be
  valid), ``test_happy_path`` (what the plugin is for) and ``test_no_personal_data_in_logs``
  (the law, not a quality). A manifest that exempts one of them, or a check the suite does not
  have, fails ``test_manifest_valid`` (:func:`refused_exemptions`), and the check runs anyway;
* ``fail`` (or ``error``), and a city/variant with no outcome at all (deselected, or the run
  stopped early), leave the requirement unmet;
* each tier needs at least one real ``pass`` in each of its groups (the checks a tier adds):
  a group met by exemptions alone (e.g. every failure mapping exempt) leaves its exempt
  requirements unmet - a tier is never earned by exemptions alone.

Why ``docs`` = the manifest's ``description`` rather than a README.md in the plugin package:
the registry reads manifests without importing plugin code, ``essc plugins`` shows them,
and ``manifest.json`` is the one file every plugin ships as package data - a README.md in
the package folder is usually not installed with the wheel.

In the contract suite, :func:`exemption` tells whether the city's plugin is exempt from a
check; the check then skips with the reason ``"exempt: <reason>"`` (:data:`EXEMPT_PREFIX`),
which the report recorder turns into the outcome ``exempt``. The pytest plugin applies it
before any fixture runs, so an exemption counts the same whether or not the mock can play
the city.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TIERS", "NONE", "UNRATED", "DOCS", "REQUIREMENTS", "EXEMPT_PREFIX", "MIN_REASON", "NOT_EXEMPTIBLE",
    "OUTCOMES", "Outcome", "TierResult", "compute_tier", "exemption", "valid_reason", "has_docs",
    "expected_variants", "ABNORMAL", "FAULTS", "CHECKS", "refused_exemptions", "OPERATION_CHECKS",
]

TIERS = ("bronze", "silver", "gold", "platinum")  #: lowest first
NONE = "none"  #: the plugin misses a bronze requirement
UNRATED = "unrated"  #: no report covers the plugin
DOCS = "docs"  #: the one requirement that is no check: the manifest has a description

#: the checks of the optional operations of contract 1.2: check -> the operation it needs declared
OPERATION_CHECKS = {
    "test_card_status_query": "card_status",
    "test_enable_payment": "enable_payment",
    "test_reset_password": "reset_password",
    "test_query_contributions": "query_contributions",
    "test_settle_medical": "settle_medical",
}

#: tier -> what it adds to the tier below (check names, or DOCS)
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "bronze": ("test_manifest_valid", "test_capabilities_implemented", "test_happy_path"),
    "silver": ("test_city_not_opened", "test_delayed_sync", "test_card_status", "test_identity_mismatch",
               *OPERATION_CHECKS),
    "gold": ("test_upstream_fault", "test_no_personal_data_in_logs", DOCS),
    "platinum": ("test_recorded_conformance",),
}

EXEMPT_PREFIX = "exempt: "
MIN_REASON = 10
NOT_EXEMPTIBLE = frozenset({"test_manifest_valid", "test_happy_path", "test_no_personal_data_in_logs"})
#: every check of the tiers (the names a manifest's ``exemptions`` may use, NOT_EXEMPTIBLE excepted)
CHECKS = tuple(r for t in TIERS for r in REQUIREMENTS[t] if r != DOCS)
OUTCOMES = ("pass", "fail", "skipped", "exempt")

#: the abnormal card statuses ``test_card_status`` runs (docs/domain.md)
ABNORMAL = ("reported_lost", "sealed", "cancelled", "locked")
#: mock fault kind -> the ``UpstreamUnavailable.reason`` the plugin must raise (``test_upstream_fault``)
FAULTS = {
    "http_500": "http_5xx",
    "http_503": "http_5xx",
    "http_429": "rate_limited",
    "malformed": "malformed_response",
    "hang": "timeout",
    "drop": "connection",
}


def expected_variants() -> dict[str, tuple[str, ...]]:
    """Check name -> the variants every city must run (parametrized checks only)."""
    return {"test_card_status": tuple(ABNORMAL), "test_upstream_fault": tuple(FAULTS)}


def valid_reason(reason: object) -> bool:
    """A written reason: a string of at least :data:`MIN_REASON` non-blank-padded characters."""
    return isinstance(reason, str) and len(reason.strip()) >= MIN_REASON


def exemption(manifest: Mapping[str, Any] | None, check: str) -> str | None:
    """The manifest's written reason for exempting ``check``, or ``None`` (no exemption, a
    reason too short to count, or a check that cannot be exempted)."""
    if not manifest or check in NOT_EXEMPTIBLE:
        return None
    reason = (manifest.get("exemptions") or {}).get(check)
    return reason.strip() if valid_reason(reason) else None


def refused_exemptions(manifest: Mapping[str, Any] | None) -> dict[str, str]:
    """The manifest's exemptions the suite refuses: check name -> why (a check that cannot be
    exempted, a check the suite does not have, a reason too short once blanks are stripped)."""
    out: dict[str, str] = {}
    for check, reason in ((manifest or {}).get("exemptions") or {}).items():
        if check in NOT_EXEMPTIBLE:
            out[check] = f"{check} cannot be exempted (not exemptible: {', '.join(sorted(NOT_EXEMPTIBLE))})"
        elif check not in CHECKS:
            out[check] = f"the suite has no check {check!r} (checks: {', '.join(CHECKS)})"
        elif not valid_reason(reason):
            out[check] = f"the reason for exempting {check} is not a written reason (>= {MIN_REASON} characters)"
    return out


def has_docs(description: object) -> bool:
    return isinstance(description, str) and bool(description.strip())


@dataclass(frozen=True)
class Outcome:
    """One check's outcome for one city (and variant, for parametrized checks)."""

    city: str
    check: str
    variant: str | None
    outcome: str  #: pass | fail | skipped | exempt (error counts as fail)
    reason: str | None = None  #: the exemption's reason (exempt only)

    @classmethod
    def of(cls, value: Outcome | Mapping[str, Any]) -> Outcome:
        if isinstance(value, Outcome):
            return value
        return cls(str(value["city"]), value["check"], value.get("variant"), value["outcome"],
                   value.get("reason"))


@dataclass
class TierResult:
    tier: str
    #: requirement -> None when met, else why not ("failed in 330100 [sealed]", ...)
    unmet: dict[str, str | None] = field(default_factory=dict)

    def missing_for(self, tier: str) -> list[str]:
        """The requirements (up to and including ``tier``) that keep the plugin below it."""
        names = [r for t in TIERS[: TIERS.index(tier) + 1] for r in REQUIREMENTS[t]]
        return [f"{r}: {self.unmet[r]}" for r in names if self.unmet.get(r)]

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "requirements": dict(self.unmet)}


def _label(city: str, variant: str | None) -> str:
    return f"{city} [{variant}]" if variant else city


def _check_requirement(check: str, found: Mapping[tuple[str, str | None], Outcome], cities: list[str],
                       variants: tuple[str | None, ...], real: set[str] | None = None) -> str | None:
    """None when ``check`` is met over ``cities`` x ``variants``, else the first reason why not.
    Adds ``check`` to ``real`` when one of its outcomes is a real pass (not an exemption)."""
    counted = False
    for city in cities:
        for variant in variants:
            o = found.get((city, variant))
            if o is None:
                return f"not run in {_label(city, variant)}"
            if o.outcome == "pass":
                counted = True
                if real is not None:
                    real.add(check)
            elif o.outcome == "exempt":
                if check in NOT_EXEMPTIBLE:
                    return f"cannot be exempted (in {_label(city, variant)})"
                if not valid_reason(o.reason):
                    return f"exempt without a written reason (>= {MIN_REASON} characters) in {_label(city, variant)}"
                counted = True
            elif o.outcome == "skipped":
                continue
            else:
                return f"failed in {_label(city, variant)}"
    if not counted:
        return "skipped in every city: nothing shows it works"
    return None


def compute_tier(outcomes: Iterable[Outcome | Mapping[str, Any]], cities: Iterable[str], *,
                 description: str | None, variants: Mapping[str, tuple[str, ...]] | None = None,
                 operations: Iterable[str] | None = None) -> TierResult:
    """The plugin's tier from its ``outcomes`` over ``cities`` (the plugin's cities the run
    covered). Pure: no I/O. ``variants`` maps parametrized checks to the variants each city
    must run (default :func:`expected_variants`); other checks have the single variant None.
    ``operations`` are those the plugin declares: a check of :data:`OPERATION_CHECKS` whose
    operation is not among them does not apply (None: every one applies)."""
    declared = None if operations is None else set(operations)
    cities = sorted(set(map(str, cities)))
    if variants is None:
        variants = expected_variants()
    by_check: dict[str, dict[tuple[str, str | None], Outcome]] = {}
    for value in outcomes:
        o = Outcome.of(value)
        by_check.setdefault(o.check, {})[(o.city, o.variant)] = o
    unmet: dict[str, str | None] = {}
    real: set[str] = set()
    for tier in TIERS:
        for req in REQUIREMENTS[tier]:
            if req == DOCS:
                unmet[req] = None if has_docs(description) else "the manifest has no description"
            elif declared is not None and OPERATION_CHECKS.get(req, "") not in declared | {""}:
                unmet[req] = None  # the plugin does not declare the operation: nothing to show
            elif not cities:
                unmet[req] = "no city of the plugin was run"
            else:
                unmet[req] = _check_requirement(req, by_check.get(req, {}), cities,
                                                tuple(variants.get(req, ())) or (None,), real)
        group = [r for r in REQUIREMENTS[tier] if r != DOCS
                 and (declared is None or OPERATION_CHECKS.get(r, "") in declared | {""})]
        if cities and group and not real.intersection(group):
            for req in group:
                if unmet[req] is None:  # met, but by exemptions (and skips) alone
                    unmet[req] = (f"exempt, and no {tier} check passed for real: each tier needs at least one "
                                  "real pass in its group")
    tier = NONE
    for name in TIERS:
        if any(unmet[r] for r in REQUIREMENTS[name]):
            break
        tier = name
    return TierResult(tier, unmet)
