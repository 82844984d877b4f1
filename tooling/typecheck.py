"""``python -m essc.tooling.typecheck``: mypy over the runtime (``essc.core``) and the service.

The folders of this repository install under other names (``core/`` is ``essc.core``, see
``package_dir`` in setup.cfg), and an editable install finds them through an import hook
that mypy cannot follow. So this builds ``build/typecheck/essc/<package>`` as symbolic links
to the folders and runs mypy with that tree on its search path; the settings (what is
checked, how strictly) are in ``[tool.mypy]`` of pyproject.toml. Extra arguments go to mypy.
Run it from the repository root (``tox -e lint`` does).
"""
from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

TREE = Path("build") / "typecheck"


def package_dirs(root: Path) -> dict[str, Path]:
    """``essc.*`` package -> its folder, from setup.cfg's ``package_dir``."""
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    out = {}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, _, folder = (x.strip() for x in line.partition("="))
        out[name] = root / folder
    return out


def build_tree(root: Path) -> Path:
    """``build/typecheck/essc/<sub>`` -> ``<root>/<folder>`` for every package of setup.cfg."""
    tree = root / TREE
    for name, folder in package_dirs(root).items():
        link = tree.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == folder:
                continue
            link.unlink()
        link.symlink_to(folder, target_is_directory=True)
    return tree


def main(argv: list[str] | None = None) -> int:
    root = Path.cwd()
    if not (root / "setup.cfg").is_file() or not (root / "pyproject.toml").is_file():
        print("essc.tooling.typecheck: run me from the repository root (setup.cfg, pyproject.toml)",
              file=sys.stderr)
        return 2
    build_tree(root)
    from mypy import api

    stdout, stderr, status = api.run(["--config-file", str(root / "pyproject.toml"),
                                      *(sys.argv[1:] if argv is None else argv)])
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
