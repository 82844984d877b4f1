"""Jinja2 templates shipped with essc-adapters (package data).

``scaffold/`` holds the files ``essc new-plugin`` renders (cli/scaffold.py): the package, its
tests, the spec skeleton of ``--dialect new`` and the Python skeleton (both sides) of
``--dialect code``. A plugin of an installed dialect spec has no adapter code to render at all.
"""
