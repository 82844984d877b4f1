"""``python -m essc.tooling.compat``: print the contract changes since the last release."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .releases import (
    CHANGELOG,
    RELEASED_DIR,
    compare_contracts,
    current_contract,
    freeze,
    load_contract,
    load_release,
    release_problem,
    released_versions,
    same_but_annotations,
)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m essc.tooling.compat",
                                     description="Breaking changes of the plugin contract against a release.")
    old = parser.add_mutually_exclusive_group()
    old.add_argument("--against", metavar="VERSION", help="a release in schemas/released/ (default: the newest)")
    old.add_argument("--old", metavar="DIR", help="a folder with the old *.schema.json (+ hookspecs.json)")
    parser.add_argument("--new", metavar="DIR", help="a folder with the new schemas (default: the installed contract)")
    parser.add_argument("--changelog", metavar="FILE", default=str(CHANGELOG), help="default: %(default)s")
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")
    parser.add_argument("--freeze", action="store_true",
                        help="release: write schemas/released/<CONTRACT_VERSION>/ from the current contract")
    parser.add_argument("--force", action="store_true", help="with --freeze: overwrite an existing release")
    args = parser.parse_args(argv)

    if args.freeze:
        from essc.core import CONTRACT_VERSION

        target = RELEASED_DIR / CONTRACT_VERSION
        if target.exists():
            if not args.force:
                parser.error(f"{target} exists: a released contract is frozen (--force to rewrite it, e.g. "
                             "after adding descriptions)")
            if not same_but_annotations(load_release(CONTRACT_VERSION), current_contract()):
                parser.error(f"refusing to rewrite {target}: the current contract differs from it in more than "
                             "annotations (title, description, examples, $comment); release a new version")
        print(f"wrote {freeze(target)}")
        return 0

    current = current_contract()
    try:
        new = load_contract(args.new, default_hooks=current) if args.new else current
        if args.old:
            base = load_contract(args.old)
        else:
            version = args.against or (released_versions() or [None])[-1]
            if version is None:
                parser.error(f"no released contract in {RELEASED_DIR}")
            base = load_release(version)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    changes = compare_contracts(base, new)
    if args.json:
        print(json.dumps([c.to_dict() for c in changes], ensure_ascii=False, indent=2))
    else:
        print(f"contract {new.version} ({new.origin}) vs {base.version} ({base.origin}): "
              f"{len(changes)} breaking change(s)")
        for c in changes:
            print(f"  {c}")
    try:
        changelog = Path(args.changelog).read_text(encoding="utf-8")
    except OSError:
        changelog = ""
    problem = None
    if base.version and new.version:
        problem = release_problem(changes, base.version, new.version, changelog)
    elif changes:
        problem = "breaking changes (versions unknown: no policy applied)"
    if problem:
        sys.stdout.flush()  # the changes first, then the advice, also when both go to one pipe
        print(problem.splitlines()[-1], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
