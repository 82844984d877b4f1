"""The contract suite: pytest checks every city plugin must pass against the mock.

Run it with ``essc contract`` (this repo or any plugin repo), or ``pytest --pyargs
essc.conformance.test_suite``. The pytest plugin (:mod:`.pytest_plugin`) is registered
through the ``pytest11`` entry point, so its fixtures and options exist in every pytest
run where essc-adapters is installed.
"""
