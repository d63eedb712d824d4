"""Installs openhands-ai (the version the remote backend is tested against)
into a cache directory, for tests/test_openhands_live.py: run
`python3 tests/openhands/setup.py`. Needs a Python 3.12 (python3.12 on PATH,
or --python), the package registry, a few minutes and ~1.4 GiB. Does
nothing when it is installed already. Exit 0: ready; 1: it could not."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from version import OPENHANDS_VERSION, cached_venv  # noqa: E402


def is_python_312(candidate: str) -> bool:
    """Whether `candidate` runs as Python 3.12 (a pyenv shim may exist and refuse)."""
    try:
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.stdout.strip() == "True"


def find_python() -> str | None:
    candidates = [shutil.which("python3.12")]
    candidates += [str(path) for path in sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12"), reverse=True)]
    return next((candidate for candidate in candidates if candidate and is_python_312(candidate)), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", help="a Python 3.12 to build the environment with")
    arguments = parser.parse_args()
    venv = cached_venv()
    if (venv / "installed").exists():
        print(f"openhands-ai {OPENHANDS_VERSION} is installed in {venv}")
        return 0
    python = arguments.python or find_python()
    if python is None:
        print("no Python 3.12 found (python3.12 on PATH, or --python): the OpenHands tests will be skipped")
        return 1
    print(f"installing openhands-ai {OPENHANDS_VERSION} into {venv} with {python} (a few minutes, ~1.4 GiB)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"openhands-ai=={OPENHANDS_VERSION}"],
            check=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"could not install openhands-ai: {error}")
        shutil.rmtree(venv, ignore_errors=True)
        return 1
    (venv / "installed").write_text(OPENHANDS_VERSION + "\n")
    print("installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
