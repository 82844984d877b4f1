"""Maintainer tooling that is not part of the runtime: contract versioning (:mod:`.compat`),
generated references (:mod:`.docs`) and framework benchmarks (:mod:`.bench`)."""
