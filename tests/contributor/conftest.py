def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: end-to-end run in a fresh virtual environment or a subprocess (several seconds each)")
