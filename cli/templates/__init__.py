"""Jinja2 templates shipped with essc-adapters (package data).

``scaffold/`` holds the files ``essc new-plugin`` renders (cli/scaffold.py); the adapter
itself is not a template: it is derived from the reference plugin of the chosen dialect.
"""
