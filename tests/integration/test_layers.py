"""The two layers as `sam build` builds them (the Makefiles SAM runs, for python3.13 on arm64): the dependencies
exactly as locked, byte for byte the same on every build, so that `sam package` names them by the same hash and a
release publishes no new dependency layer; the code layer holding the dlrwatch package alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from dlrwatch_local.template import ROOT
from dlrwatch_local.translate import content_hash

LAYERS = ROOT / "layers"
LOCKED = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", re.MULTILINE)


def build(layer: str, target: str, into: Path) -> Path:
    subprocess.run(  # noqa: S603 - make, with the repository's own Makefile
        ["make", "--no-print-directory", "-C", str(LAYERS / layer), target, f"ARTIFACTS_DIR={into}"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return into / "python"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def dependencies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two builds of the dependency layer, one after the other."""
    return tuple(  # type: ignore[return-value]
        build("dependencies", "build-DependenciesLayer", tmp_path_factory.mktemp(f"dependencies-{n}")) for n in (1, 2)
    )


def test_the_dependency_layer_is_the_lock_whole_and_nothing_else(dependencies: tuple[Path, Path]) -> None:
    locked = {normalized(n): v for n, v in LOCKED.findall((LAYERS / "dependencies" / "requirements.txt").read_text())}
    installed = {}
    for info in dependencies[0].glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[normalized(name)] = version
    assert installed == locked
    assert "boto3" not in installed  # the runtime's own
    assert not (dependencies[0] / "dlrwatch").exists()
    assert not (dependencies[0] / "bin").exists()


def test_the_dependency_layer_builds_to_the_same_bytes_every_time(dependencies: tuple[Path, Path]) -> None:
    first, second = dependencies
    assert content_hash(first) == content_hash(second)


def test_the_code_layer_holds_the_dlrwatch_package_alone(tmp_path: Path) -> None:
    built = build("dlrwatch", "build-DlrwatchLayer", tmp_path)
    assert [p.name for p in built.iterdir()] == ["dlrwatch"]
    sources = sorted(p.relative_to(LAYERS / "dlrwatch").as_posix() for p in (LAYERS / "dlrwatch").rglob("*.py"))
    shipped = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert shipped == [s for s in sources if "__pycache__" not in s]
