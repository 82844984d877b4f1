"""Breaking changes of the plugin contract between two versions.

The contract is the JSON Schemas of ``schemas/`` (``*.schema.json``; not ``openapi.json``,
which belongs to the activation service), the hook specifications of
``core/hookspecs.py`` and the operation table of ``core/adapter.py``. Every released
version keeps a frozen copy in ``schemas/released/<MAJOR.MINOR>/``: the schemas plus a
``hookspecs.json`` with the hook names and argument lists.

:func:`compare` is pure: give it the old and the new schema sets (name -> schema) and
hook lists (name -> argument names), get the breaking changes back. A change is breaking
when something that was valid (a payload, a plugin, a hook implementation) may no longer be:

* ``schema-removed`` / ``definition-removed``: a schema file or a ``$defs`` entry is gone;
* ``property-removed``: a property is gone from ``properties``;
* ``property-required``: a property is required that was not (new or existing);
* ``type-narrowed``: the ``type`` list lost a type (``number`` -> ``integer`` too), a type
  appeared where there was none, or the schema became ``false``;
* ``enum-narrowed``: the ``enum`` lost values, or an ``enum`` appeared;
* ``const-added`` / ``const-changed``: a ``const`` appeared, or its value changed;
* ``pattern-changed`` / ``format-changed``: a ``pattern`` (``format``) appeared or changed
  (regular expressions cannot be compared, so every change counts);
* ``bound-tightened``: ``minLength``, ``minimum``, ``exclusiveMinimum``, ``minItems``,
  ``minProperties`` appeared or rose; ``maxLength``, ``maximum``, ``exclusiveMaximum``,
  ``maxItems``, ``maxProperties`` appeared or fell;
* ``additional-properties-closed``: ``additionalProperties`` (``unevaluatedProperties``)
  turned ``false``;
* ``constraint-tightened``: any other new constraint: an ``allOf`` member or
  ``patternProperties`` entry added, ``anyOf``/``oneOf`` alternatives removed, an ``anyOf``
  added (unless one of its alternatives only requires properties the old schema required: the
  old payloads all satisfy it),
  ``uniqueItems`` turned on, ``multipleOf``, ``contains``, ``not``, ``if``,
  ``propertyNames``, ``dependentRequired``, ``dependentSchemas`` added or changed;
* ``ref-changed``: a ``$ref`` points elsewhere and a side cannot be resolved (when both
  resolve, their targets are compared instead);
* ``hook-removed``, ``hook-argument-removed``, ``hook-argument-renamed``: pluggy passes
  arguments by name, so an implementation asking for the old name would fail;
* ``operation-removed``, ``operation-schema-changed``: an adapter operation is gone, or
  its request/response schema is another one.

Allowed: new optional properties, new schemas, new ``$defs``, new hooks, new hook
arguments, widened enums and types, removed or loosened constraints, and every
annotation (``title``, ``description``, ``examples``, ``$comment``).

References (``$ref``) are followed within the schema set (``common.schema.json#/$defs/...`` or
``#/...``) only when a ``$ref`` changed; an unchanged ``$ref`` needs no following because
its target is compared where it lives (``common`` is compared as a schema of its own).

    python -m essc.tooling.compat                 # current contract vs the newest release
    python -m essc.tooling.compat --against 1.0   # ... vs a given release
    python -m essc.tooling.compat --old DIR --new DIR [--json]
    python -m essc.tooling.compat --freeze        # at release: write schemas/released/<CONTRACT_VERSION>/
    python -m essc.tooling.compat --freeze --force  # re-copy a release whose schemas only gained annotations

It prints the breaking changes and exits 1 when they are not allowed: a breaking change
needs a new contract major (``essc.core.CONTRACT_VERSION``) and a ``CHANGELOG.md`` entry
for that major that mentions the migration (:func:`release_problem`).
"""
from __future__ import annotations

from .diff import HOOKSPECS_FILE, KINDS, Change, compare, compare_hooks, compare_operations, compare_schemas
from .releases import (
    CHANGELOG,
    RELEASED_DIR,
    Contract,
    changelog_entries,
    compare_contracts,
    current_contract,
    freeze,
    hookspecs_document,
    latest_release,
    load_contract,
    load_release,
    release_problem,
    released_versions,
    same_but_annotations,
)

__all__ = [
    "KINDS", "Change", "Contract", "compare", "compare_schemas", "compare_hooks", "compare_operations",
    "compare_contracts", "current_contract", "load_contract", "released_versions", "load_release",
    "latest_release", "hookspecs_document", "freeze", "same_but_annotations", "release_problem",
    "changelog_entries", "RELEASED_DIR", "HOOKSPECS_FILE", "CHANGELOG",
]
