"""``essc contract``: run the contract suite over the registered cities."""
from __future__ import annotations

import sys

import click


@click.command("contract", context_settings={"ignore_unknown_options": True})
@click.option("--city", "cities", multiple=True, metavar="CODE", help="Only this city (repeatable).")
@click.option("--plugin", "plugins", multiple=True, metavar="NAME", help="Only this plugin's cities (repeatable).")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report here.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the QA report into DIR: report.json, junit.xml and index.html (matrix, tiers).")
@click.option("--mock-url", help="Use a running mock instead of an in-process one.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def contract_cmd(cities, plugins, junit, report_dir, mock_url, pytest_args) -> None:
    """Run the contract suite (extra arguments go to pytest, e.g. -x or -k)."""
    try:
        import pytest
    except ModuleNotFoundError:
        raise click.ClickException(
            "the contract suite runs on pytest, which is not installed in this environment: install the "
            "test extra (in a scaffolded plugin: python -m pip install -e \".[test]\"; in essc-adapters: "
            "python -m pip install -e \".[test]\") or python -m pip install pytest") from None

    args = ["--pyargs", "essc.conformance.test_suite", "-p", "no:cacheprovider", "-q", "-rfEs"]
    args += [f"--essc-city={c}" for c in cities] + [f"--essc-plugin={p}" for p in plugins]
    if junit:
        args.append(f"--junitxml={junit}")
    if report_dir:
        args += ["-p", "essc.conformance.recorder", f"--essc-report={report_dir}"]
    if mock_url:
        args.append(f"--essc-mock-url={mock_url}")
    args += list(pytest_args)
    sys.exit(int(pytest.main(args)))
