"""The functions as Lambda lays them out, now and before, for the sections that start them cold or weigh them.

``current()`` is what ``sam build`` made (``make bench`` builds first). ``baseline()`` is the same layout built
from ``BASELINE``, the last revision whose layers shipped no bytecode and whose functions imported whole
Powertools packages, so that every figure is compared with the design it replaces, measured in the same run.
``runtime()`` stands in for the runtime's own boto3 (``/var/runtime``): installed for the runtime's Python and
precompiled, as the runtime ships it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from common import ROOT

BASELINE = "0ffa0f0"
FUNCTIONS = ("Callback", "Messages", "Poller", "Publisher")
WORK = ROOT / ".local" / "bench"


@dataclass(frozen=True)
class Layout:
    """One build: each function's code folder and the two layers' ``python`` folders, as mounted on Lambda."""

    name: str
    root: Path

    def function(self, name: str) -> Path:
        return self.root / f"{name}Function"

    def layers(self) -> list[Path]:
        return [self.root / "DependenciesLayer" / "python", self.root / "DlrwatchLayer" / "python"]

    def sys_path(self, function: str) -> list[str]:
        """``sys.path`` as Lambda orders it: the function's code, then the layers, then the runtime's packages."""
        return [str(p) for p in (self.function(function), *self.layers(), runtime())]


@cache
def runtime_python() -> str:
    found = subprocess.run(  # noqa: S603
        [str(ROOT / "scripts" / "find-python"), "3.13"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not found:
        raise RuntimeError("no Python 3.13 (the Lambda runtime's) on this machine")
    return found


def run_in_runtime(code: str, env: dict[str, str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter of the runtime's Python that sees no package of this machine (``-I -S``:
    ``code`` puts a layout's folders on ``sys.path``). It writes no bytecode (``-B``), as on Lambda, where the code
    is read-only: a run must not leave .pyc files in a layout that a later cold start or size would then count."""
    done = subprocess.run(  # noqa: S603
        [runtime_python(), "-B", "-I", "-S", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr[-2000:]}")
    return done


def current() -> Layout:
    built = ROOT / ".aws-sam" / "build"
    if not (built / "CallbackFunction").is_dir():
        raise RuntimeError("no sam build output: run `make build` (make bench does)")
    return Layout("current", built)


@cache
def baseline() -> Layout:
    revision = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{BASELINE}^{{commit}}"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    into = WORK / f"baseline-{revision[:12]}"
    if (into / "done").exists():
        return Layout("baseline", into)
    shutil.rmtree(into, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch)
        archive = source / "source.tar"
        with archive.open("wb") as out:
            subprocess.run(  # noqa: S603
                ["git", "-C", str(ROOT), "archive", revision, "layers", "functions"],  # noqa: S607
                stdout=out,
                check=True,
            )
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
        for layer, target in (("dependencies", "DependenciesLayer"), ("dlrwatch", "DlrwatchLayer")):
            subprocess.run(  # noqa: S603
                [  # noqa: S607
                    "make",
                    "--no-print-directory",
                    "-C",
                    str(source / "layers" / layer),
                    f"build-{target}",
                    f"ARTIFACTS_DIR={into / target}",
                ],
                check=True,
                capture_output=True,
            )
        for function in FUNCTIONS:
            shutil.copytree(source / "functions" / function.lower(), into / f"{function}Function")
    (into / "done").touch()
    return Layout("baseline", into)


@cache
def runtime() -> Path:
    """boto3 and botocore at the versions the tests run with (requirements-run.txt pins the runtime's)."""
    import boto3
    import botocore

    into = WORK / f"runtime-boto3-{boto3.__version__}"
    if not (into / "done").exists():
        shutil.rmtree(into, ignore_errors=True)
        subprocess.run(  # noqa: S603
            [
                str(ROOT / ".tools" / "uv" / "bin" / "uv"),
                "pip",
                "install",
                "--quiet",
                "--target",
                str(into),
                "--python",
                runtime_python(),
                "--compile-bytecode",
                f"boto3=={boto3.__version__}",
                f"botocore=={botocore.__version__}",
            ],
            check=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
        (into / "done").touch()
    return into
