"""The ``essc`` command line. Subcommands live in their own modules and import heavy
libraries (flask, jsonschema, requests, pytest) only when they run."""
from __future__ import annotations

import logging

import click

from . import bench, conformance, contract, dialects, mock, pages, plugins, scaffold, service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="essc-adapters")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug). Personal data is masked.")
def main(verbose: int) -> None:
    """essc-adapters: issue and activate the electronic social security card through city plugins."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(plugins.plugins_cmd)
main.add_command(dialects.dialects_cmd)
main.add_command(conformance.record_cmd)
main.add_command(conformance.conformance_cmd)
main.add_command(mock.mock_cmd)
main.add_command(contract.contract_cmd)
main.add_command(bench.bench_cmd)
main.add_command(service.demo_cmd)
main.add_command(service.serve_cmd)
main.add_command(service.worker_cmd)
main.add_command(service.activate_cmd)
main.add_command(scaffold.new_plugin_cmd)
main.add_command(pages.operator_password_cmd)
main.add_command(pages.launch_url_cmd)
