"""The command blocks of README.md and docs/plugin-guide.md that a reader is meant to run are run.

A block is runnable when the info string of its fence is ``bash run`` (renderers highlight it as
bash and ignore the second word)::

    ```bash run
    essc plugins
    ```

The runnable blocks of one document run IN ORDER in ONE bash session (``set -euo pipefail``), as
a reader following the document in one terminal would: the virtual environment a block activates,
the folder it ``cd``s into, the mock it starts in the background stay for the blocks after it.
Background jobs are stopped at the end. A command that fails (or a block that went stale: a moved
module, a renamed option, a missing extra) fails the test, which names the block.

- README.md runs in a COPY of the repository (its reader stands at the root of a checkout). Its
  blocks make their own virtual environment (``python3 -m venv .venv``) and install the copy into
  it: every dependency comes from the package index (PyPI) or the local wheel cache pip is
  configured with.
- docs/plugin-guide.md runs in an empty folder, inside a FRESH virtual environment that sees this
  test run's packages (essc-adapters among them) - what the guide's first, unmarked block sets up
  with a path of the reader's own. What its blocks install (the scaffolded plugin) goes into it.

The mock's port 8765 in a block is replaced by a free port, so that runs never collide. Blocks
that are not marked: the ``tox`` run (it would run this test again), commands holding the reader's
own values (``<a mock citizen>``, ``/path/to/...``), and configuration examples (checked by
tests/contributor/test_docs.py).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import venv
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.M | re.S)
MOCK_PORT = "8765"
COPY_IGNORE = shutil.ignore_patterns(".git", ".tox", ".venv", ".ci-venv", "build", "dist", "*.egg-info",
                                     "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".essc",
                                     "reports", "*.sqlite3", "essc-suzhou")


SCRIPTS = {"essc": "from essc.cli import main\nsys.exit(main())",
           "pytest": "import pytest\nsys.exit(pytest.main())"}


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    info: str
    text: str

    @property
    def runnable(self) -> bool:
        return self.info.split()[:2] == ["bash", "run"]


def blocks(document: str) -> list[Block]:
    """Every fenced block of ``document`` (relative to the repository root)."""
    text = (ROOT / document).read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        indent = m.group("indent")
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in m.group("body").splitlines(keepends=True))
        out.append(Block(document, text.count("\n", 0, m.start()) + 1, m.group("info").strip(), body))
    return out


def session_script(runnable: list[Block], port: int) -> str:
    """One bash script: every runnable block in order, each announced, background jobs stopped at exit."""
    parts = ["set -euo pipefail",
             "trap 'for p in $(jobs -p); do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT"]
    for b in runnable:
        parts.append(f"printf '\\n=== {b.document}:{b.line} ===\\n'")
        parts.append(b.text.replace(MOCK_PORT, str(port)))
    return "\n".join(parts) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The reader's environment: nothing of this run's ESSC_* settings or virtual environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ESSC_", "PYTEST_", "TOX_")) and k not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this run's packages (essc-adapters, pytest, responses,
    setuptools) but installs into its own site-packages: ``--system-site-packages`` shows the BASE
    interpreter's packages, so a ``.pth`` file adds those of the environment this test runs in."""
    venv.EnvBuilder(system_site_packages=True, with_pip=find_spec("pip") is None, symlinks=os.name != "nt",
                    clear=True).create(path)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    parents = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(parents)]
    Path(purelib, "_essc_parent_environment.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the console scripts the guide calls, as pip writes them for a reader who installed essc-adapters
    # into this environment (the parent's scripts would run the parent's interpreter)
    for name, call in SCRIPTS.items():
        script = python.parent / name
        script.write_text(f"#!{python}\nimport sys\n{call}\n", encoding="utf-8")
        script.chmod(0o755)
    return python.parent


def run_session(runnable: list[Block], cwd: Path, env: dict[str, str], timeout: float) -> None:
    script = cwd.parent / f"{cwd.name}-session.sh"
    script.write_text(session_script(runnable, free_port()), encoding="utf-8")
    proc = subprocess.Popen(["bash", str(script)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the blocks did not finish within {timeout:g}s:\n{out[-6000:]}")
    finally:
        try:  # whatever the session left running (a mock started in the background)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if proc.returncode != 0:
        started = re.findall(r"^=== (.+) ===$", out, flags=re.M)
        where = started[-1] if started else "?"
        pytest.fail(f"the command block at {where} failed (exit {proc.returncode}); the output ends:\n{out[-6000:]}",
                    pytrace=False)


# -- the marks themselves ------------------------------------------------------------------------------
def test_the_fence_parser_sees_runnable_blocks_only_where_marked(tmp_path, monkeypatch):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n```bash run\necho one\n```\n\n```bash\necho two\n```\n\n- item\n\n  ```bash run\n"
                   "  echo three\n  ```\n\n````markdown\n```bash run\necho nested\n```\n````\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = blocks("doc.md")
    assert [(b.line, b.runnable, b.text) for b in found] == [
        (3, True, "echo one\n"), (7, False, "echo two\n"), (13, True, "echo three\n"),
        (17, False, "```bash run\necho nested\n```\n")]


@pytest.mark.parametrize("document", ["README.md", "docs/plugin-guide.md"])
def test_the_documents_mark_their_commands(document):
    """The commands a reader is meant to run are marked (so the tests below run them)."""
    runnable = [b for b in blocks(document) if b.runnable]
    assert runnable, f"{document} marks no block with ```bash run"
    for b in runnable:
        assert "<" not in b.text.replace("< <(", "").replace(" < ", ""), \
            f"{document}:{b.line}: a runnable block holds a placeholder"


def test_a_stale_command_fails(tmp_path):
    block = Block("synthetic.md", 1, "bash run", "essc no-such-command\n")
    session = tmp_path / "session"
    session.mkdir()
    with pytest.raises(pytest.fail.Exception, match=r"synthetic.md:1 failed"):
        run_session([block], session, clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"),
                    timeout=60)


# -- the documents -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("curl") is None, reason="needs bash and curl")
def test_readme_command_blocks(tmp_path):
    """README.md in a copy of the repository: its own virtual environment, installed from the copy."""
    checkout = tmp_path / "essc-adapters"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE, symlinks=True)
    run_session([b for b in blocks("README.md") if b.runnable], checkout, clean_env(), timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("curl") is None, reason="needs bash and curl")
@pytest.mark.skipif(find_spec("setuptools") is None, reason="setuptools is needed to build the plugin")
def test_plugin_guide_command_blocks(tmp_path):
    """docs/plugin-guide.md in an empty folder, in a fresh virtual environment with essc-adapters."""
    bin_dir = fresh_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(bin_dir.parent))
    run_session([b for b in blocks("docs/plugin-guide.md") if b.runnable], work, env, timeout=900)
