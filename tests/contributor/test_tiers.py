"""Quality tiers (essc.conformance.tiers): the computation table and exemptions."""
from __future__ import annotations

import pytest

from essc.conformance import checks
from essc.conformance.tiers import (
    DOCS,
    EXEMPT_PREFIX,
    OPERATION_CHECKS,
    REQUIREMENTS,
    TIERS,
    compute_tier,
    exemption,
    expected_variants,
    valid_reason,
)
from essc.core.errors import InvalidInput
from essc.core.schemas import validator

VARIANTS = {"test_card_status": ("reported_lost", "sealed", "cancelled", "locked"),
            "test_upstream_fault": ("http_500", "http_503", "http_429", "malformed", "hang", "drop")}
CHECKS = [r for t in TIERS if t != "platinum" for r in REQUIREMENTS[t] if r != DOCS]  # all_pass() tops at gold
REASON = "the city gateway answers every fault with a fixed 200 page; agreed with QA on 2026-11-01"


def all_pass(cities=("100001", "100002")) -> dict[tuple[str, str, str | None], dict]:
    out = {}
    for city in cities:
        for check in CHECKS:
            for variant in VARIANTS.get(check, (None,)):
                out[(city, check, variant)] = {"city": city, "check": check, "variant": variant, "outcome": "pass"}
    return out


def tier(outcomes: dict, cities=("100001", "100002"), description="a plugin") -> str:
    return compute_tier(outcomes.values(), cities, description=description, variants=VARIANTS).tier


def set_outcome(outcomes, city, check, variant, outcome, reason=None):
    outcomes[(city, check, variant)] = {"city": city, "check": check, "variant": variant, "outcome": outcome,
                                        "reason": reason}
    return outcomes


def exempt(outcomes, checks, cities=("100001", "100002"), reason=REASON):
    for city in cities:
        for check in checks:
            for variant in VARIANTS.get(check, (None,)):
                set_outcome(outcomes, city, check, variant, "exempt", reason)
    return outcomes


SILVER = ["test_city_not_opened", "test_delayed_sync", "test_card_status", "test_identity_mismatch",
          *OPERATION_CHECKS]
EXEMPTIBLE = ["test_capabilities_implemented", *SILVER, "test_upstream_fault"]


def drop(outcomes, city, check, variant=None):
    del outcomes[(city, check, variant)]
    return outcomes


A, B = "100001", "100002"

TABLE = [
    # (what, outcomes changed from "everything passes in both cities", description, tier)
    ("everything passes, documented", lambda o: o, "a plugin", "gold"),
    ("no description (docs)", lambda o: o, "", "silver"),
    ("blank description (docs)", lambda o: o, "   ", "silver"),
    ("timeout fault fails in one city", lambda o: set_outcome(o, B, "test_upstream_fault", "hang", "fail"),
     "x", "silver"),
    ("timeout fault not run (deselected)", lambda o: drop(o, A, "test_upstream_fault", "hang"), "x", "silver"),
    ("personal data leaks", lambda o: set_outcome(o, A, "test_no_personal_data_in_logs", None, "fail"),
     "x", "silver"),
    ("delayed sync fails", lambda o: set_outcome(o, A, "test_delayed_sync", None, "fail"), "x", "bronze"),
    ("one card status fails in one city", lambda o: set_outcome(o, B, "test_card_status", "locked", "fail"),
     "x", "bronze"),
    ("identity mismatch fails", lambda o: set_outcome(o, A, "test_identity_mismatch", None, "fail"), "x", "bronze"),
    ("city not opened errors", lambda o: set_outcome(o, A, "test_city_not_opened", None, "error"), "x", "bronze"),
    ("happy path fails", lambda o: set_outcome(o, A, "test_happy_path", None, "fail"), "x", "none"),
    ("manifest invalid", lambda o: set_outcome(o, B, "test_manifest_valid", None, "fail"), "x", "none"),
    ("capabilities missing", lambda o: set_outcome(o, A, "test_capabilities_implemented", None, "fail"),
     "x", "none"),
    ("a not-opened city skips the flow checks",
     lambda o: [set_outcome(o, B, c, v, "skipped") for c in CHECKS[2:] for v in VARIANTS.get(c, (None,))] and o,
     "x", "gold"),
    ("happy path skipped in every city: nothing shows it works",
     lambda o: [set_outcome(o, c, "test_happy_path", None, "skipped") for c in (A, B)] and o, "x", "none"),
    ("faults exempt with a written reason",
     lambda o: [set_outcome(o, c, "test_upstream_fault", v, "exempt", REASON)
                for c in (A, B) for v in VARIANTS["test_upstream_fault"]] and o, "x", "gold"),
    ("faults exempt, reason too short",
     lambda o: set_outcome(o, A, "test_upstream_fault", "hang", "exempt", "legacy"), "x", "silver"),
    ("faults exempt without any reason",
     lambda o: set_outcome(o, A, "test_upstream_fault", "hang", "exempt", None), "x", "silver"),
    ("delayed sync exempt with a reason", lambda o: set_outcome(o, A, "test_delayed_sync", None, "exempt", REASON),
     "x", "gold"),
    ("the manifest check cannot be exempted",
     lambda o: set_outcome(o, A, "test_manifest_valid", None, "exempt", REASON), "x", "none"),
    ("the happy path cannot be exempted", lambda o: exempt(o, ["test_happy_path"], (A,)), "x", "none"),
    ("the personal-data check cannot be exempted", lambda o: exempt(o, ["test_no_personal_data_in_logs"], (B,)),
     "x", "silver"),
    ("every failure mapping exempt: no real pass in the silver group", lambda o: exempt(o, SILVER), "x", "bronze"),
    ("three failure mappings exempt, identity mismatch passes for real", lambda o: exempt(o, SILVER[:3]), "x",
     "gold"),
    ("every failure mapping exempt but one passes in one city",
     lambda o: exempt(exempt(o, SILVER[:3]), SILVER[3:], (B,)), "x", "gold"),
    ("a settlement check failing in one city (operations not given: every one applies)",
     lambda o: set_outcome(o, B, "test_settle_medical", None, "fail"), "x", "bronze"),
    ("every exemptible check exempt", lambda o: exempt(o, EXEMPTIBLE), "x", "bronze"),
    ("every check but the manifest exempt (issue 9: this gave gold on two real passes)",
     lambda o: exempt(o, [c for c in CHECKS if c != "test_manifest_valid"]), "x", "none"),
    ("a failure in another plugin's city does not count",
     lambda o: set_outcome(o, "999999", "test_happy_path", None, "fail"), "x", "gold"),
    ("a check outside the tiers fails", lambda o: set_outcome(o, A, "test_something_new", None, "fail"), "x", "gold"),
]


@pytest.mark.parametrize("what, change, description, expected", TABLE, ids=[t[0] for t in TABLE])
def test_tier_table(what, change, description, expected):
    assert tier(change(all_pass()), description=description) == expected


def test_no_city_run_is_no_tier():
    assert tier({}, cities=()) == "none"


def test_unmet_requirements_say_why():
    outcomes = set_outcome(all_pass(), B, "test_card_status", "sealed", "fail")
    drop(outcomes, A, "test_upstream_fault", "hang")
    result = compute_tier(outcomes.values(), (A, B), description=None, variants=VARIANTS)
    assert result.tier == "bronze"
    assert result.unmet["test_card_status"] == f"failed in {B} [sealed]"
    assert result.unmet["test_upstream_fault"] == f"not run in {A} [hang]"
    assert result.unmet[DOCS] == "the manifest has no description"
    assert result.unmet["test_happy_path"] is None
    assert result.missing_for("silver") == [f"test_card_status: failed in {B} [sealed]"]
    assert result.to_dict()["tier"] == "bronze"


def test_a_group_met_by_exemptions_alone_says_why():
    result = compute_tier(exempt(all_pass(), SILVER).values(), (A, B), description="d", variants=VARIANTS)
    assert result.tier == "bronze"
    for check in SILVER:
        assert result.unmet[check] == ("exempt, and no silver check passed for real: each tier needs at least one "
                                       "real pass in its group")
    result = compute_tier(exempt(all_pass(), ["test_happy_path"]).values(), (A, B), description="d",
                          variants=VARIANTS)
    assert result.unmet["test_happy_path"] == f"cannot be exempted (in {A})"


def test_outcomes_accept_objects_and_dicts():
    from essc.conformance.tiers import Outcome

    outcomes = [Outcome.of(o) for o in all_pass((A,)).values()]
    assert compute_tier(outcomes, [A], description="d", variants=VARIANTS).tier == "gold"


def test_expected_variants_follow_the_suite():
    variants = expected_variants()
    assert variants["test_card_status"] == tuple(checks.ABNORMAL)
    assert variants["test_upstream_fault"] == tuple(checks.FAULTS)
    assert "hang" in variants["test_upstream_fault"]  # timeouts are part of gold


# -- exemptions --------------------------------------------------------------------------
@pytest.mark.parametrize("manifest, check, expected", [
    (None, "test_upstream_fault", None),
    ({}, "test_upstream_fault", None),
    ({"exemptions": {"test_upstream_fault": REASON}}, "test_upstream_fault", REASON),
    ({"exemptions": {"test_upstream_fault": "  " + REASON + "  "}}, "test_upstream_fault", REASON),
    ({"exemptions": {"test_upstream_fault": REASON}}, "test_delayed_sync", None),
    ({"exemptions": {"test_upstream_fault": "too short"}}, "test_upstream_fault", None),
    ({"exemptions": {"test_upstream_fault": "         x"}}, "test_upstream_fault", None),
    ({"exemptions": {"test_manifest_valid": REASON}}, "test_manifest_valid", None),
    ({"exemptions": {"test_happy_path": REASON}}, "test_happy_path", None),
    ({"exemptions": {"test_no_personal_data_in_logs": REASON}}, "test_no_personal_data_in_logs", None),
    ({"exemptions": {"test_capabilities_implemented": REASON}}, "test_capabilities_implemented", REASON),
])
def test_exemption_lookup(manifest, check, expected):
    assert exemption(manifest, check) == expected


def test_valid_reason():
    assert valid_reason("0123456789") and not valid_reason("012345678") and not valid_reason(None)


def test_manifest_schema_carries_exemptions():
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    manifest = Registry(Settings(entry_points=False, plugin_dirs=())).plugin("zhejiang").manifest
    check = validator("manifest")
    assert not check.problems({**manifest, "exemptions": {"test_upstream_fault": REASON}})
    assert check.problems({**manifest, "exemptions": {"test_upstream_fault": "too short"}})


class FakeRegistry:
    def __init__(self, manifest):
        self.manifest = manifest

    def city(self, code):
        if code != A:
            raise InvalidInput(f"no plugin serves city {code}", field="city", rule="unknown-city")
        return type("Info", (), {"plugin": "p"})()

    def plugin(self, name):
        return type("Record", (), {"manifest": self.manifest})()


def test_checks_skip_an_exempt_check_with_its_reason():
    registry = FakeRegistry({"exemptions": {"test_upstream_fault": REASON}})
    with pytest.raises(pytest.skip.Exception) as info:
        checks.skip_if_exempt(registry, A, "test_upstream_fault")
    assert info.value.msg == EXEMPT_PREFIX + REASON
    checks.skip_if_exempt(registry, A, "test_happy_path")  # not exempt: runs on
    checks.skip_if_exempt(registry, "999999", "test_upstream_fault")  # unknown city: the check reports it


def test_checks_ignore_exemptions_without_a_written_reason():
    checks.skip_if_exempt(FakeRegistry({"exemptions": {"test_upstream_fault": "short"}}), A, "test_upstream_fault")
    for check in ("test_manifest_valid", "test_happy_path", "test_no_personal_data_in_logs"):
        checks.skip_if_exempt(FakeRegistry({"exemptions": {check: REASON}}), A, check)  # not exemptible: runs on


class Item:
    """What the suite's setup hook reads of a pytest item."""

    def __init__(self, check, city=A):
        self.obj = getattr(checks, check)
        self.originalname = self.name = check
        self.callspec = type("CallSpec", (), {"params": {"essc_city": city}})()
        self.config = None


def test_exemptions_apply_before_any_fixture(monkeypatch):
    """The suite's setup hook skips an exempt check before the mock's fixtures run: the same outcome
    whether or not the mock can play the city (before, the mock fixture skipped first)."""
    from essc.conformance import selection

    registry = FakeRegistry({"exemptions": {"test_upstream_fault": REASON, "test_happy_path": REASON}})
    monkeypatch.setattr(selection, "_registry", lambda config: registry)
    with pytest.raises(pytest.skip.Exception) as info:
        selection.pytest_runtest_setup(Item("test_upstream_fault"))
    assert info.value.msg == EXEMPT_PREFIX + REASON
    selection.pytest_runtest_setup(Item("test_happy_path"))  # not exemptible: set up and run
    selection.pytest_runtest_setup(Item("test_upstream_fault", city="999999"))  # unknown city: the check says so


def test_every_check_consults_its_exemption():
    import inspect

    for name in CHECKS:
        source = inspect.getsource(getattr(checks, name))
        assert f'skip_if_exempt(essc_registry, essc_city, "{name}")' in source, name


def test_platinum_needs_recorded_conformance_passing_for_real():
    recorded = "test_recorded_conformance"
    assert tier(set_outcome(set_outcome(all_pass(), A, recorded, None, "pass"), B, recorded, None, "skipped")) \
        == "platinum"  # cassettes of one city are evidence; the other city has none recorded yet
    assert tier(set_outcome(set_outcome(all_pass(), A, recorded, None, "pass"), B, recorded, None, "fail")) == "gold"
    assert tier(set_outcome(all_pass(), A, recorded, None, "skipped")) == "gold"
    assert tier(exempt(all_pass(), [recorded])) == "gold"  # never by exemption alone


# -- the checks of contract 1.2 count where the plugin declares their operation ----------------------------
BASE_OPERATIONS = ("read_card", "verify_identity", "activate", "health")


def without_operation_checks(outcomes):
    for key in [k for k in outcomes if k[1] in OPERATION_CHECKS]:
        outcomes[key] = dict(outcomes[key], outcome="skipped")
    return outcomes


def test_operation_checks_do_not_apply_to_a_plugin_without_the_operations():
    outcomes = without_operation_checks(all_pass())
    result = compute_tier(outcomes.values(), (A, B), description="d", variants=VARIANTS, operations=BASE_OPERATIONS)
    assert result.tier == "gold" and all(result.unmet[c] is None for c in OPERATION_CHECKS)
    # not told what the plugin declares: every check applies, and skips alone show nothing
    assert compute_tier(outcomes.values(), (A, B), description="d", variants=VARIANTS).tier == "bronze"


def test_a_declared_operation_must_pass():
    operations = (*BASE_OPERATIONS, "settle_medical")
    outcomes = set_outcome(without_operation_checks(all_pass()), B, "test_settle_medical", None, "fail")
    result = compute_tier(outcomes.values(), (A, B), description="d", variants=VARIANTS, operations=operations)
    assert result.tier == "bronze" and result.unmet["test_settle_medical"] == f"failed in {B}"
    skipped = set_outcome(outcomes, B, "test_settle_medical", None, "skipped")
    result = compute_tier(skipped.values(), (A, B), description="d", variants=VARIANTS, operations=operations)
    assert result.unmet["test_settle_medical"] == "skipped in every city: nothing shows it works"
    passed = set_outcome(set_outcome(outcomes, A, "test_settle_medical", None, "pass"), B, "test_settle_medical",
                         None, "pass")
    assert compute_tier(passed.values(), (A, B), description="d", variants=VARIANTS, operations=operations).tier \
        == "gold"


def test_every_operation_check_names_an_operation_of_the_contract():
    from essc.core.adapter import OPERATIONS

    assert set(OPERATION_CHECKS.values()) == {n for n, op in OPERATIONS.items() if op.since == "1.2"}
    for name in OPERATION_CHECKS:
        assert callable(getattr(checks, name))
