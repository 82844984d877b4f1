"""The built-in dialect specs (one ``<name>.yaml`` each, validated by
``schemas/dialect.schema.json``); third-party packages add theirs through the
``essc.dialects`` entry-point group (docs/dialect-specs.md)."""
