"""Fixtures every reference plugin's unit tests share."""
import pytest
import responses


@pytest.fixture
def rsps():
    """HTTP mocked with `responses`; a registered but unused response fails the test."""
    with responses.RequestsMock() as mocked:
        yield mocked
