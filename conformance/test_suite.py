"""Entry module of the contract suite: ``pytest --pyargs essc.conformance.test_suite``.

The checks live in :mod:`essc.conformance.checks`; importing them here lets pytest
collect them under any rootdir and import mode."""
from essc.conformance.checks import (  # noqa: F401
    test_capabilities_implemented,
    test_card_status,
    test_card_status_query,
    test_city_not_opened,
    test_delayed_sync,
    test_enable_payment,
    test_happy_path,
    test_identity_mismatch,
    test_manifest_valid,
    test_no_personal_data_in_logs,
    test_query_contributions,
    test_recorded_conformance,
    test_reset_password,
    test_settle_medical,
    test_upstream_fault,
)
