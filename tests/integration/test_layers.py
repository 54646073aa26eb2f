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
RUNTIME = "3.13"  # the Lambda runtime's Python (template.yaml: python3.13)
# The interpreter the repository's Makefile compiles the layers with: the runtime's version, found like it does.
RUNTIME_PYTHON = subprocess.run(  # noqa: S603
    [str(ROOT / "scripts" / "find-python"), RUNTIME], capture_output=True, text=True, check=True
).stdout.strip()
MAGIC = bytes.fromhex(
    subprocess.run(  # noqa: S603
        [RUNTIME_PYTHON, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
)
LOCKED = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", re.MULTILINE)


def build(layer: str, target: str, into: Path) -> Path:
    subprocess.run(  # noqa: S603 - make, with the repository's own Makefile
        [  # noqa: S607
            "make",
            "--no-print-directory",
            "-C",
            str(LAYERS / layer),
            target,
            f"ARTIFACTS_DIR={into}",
            f"BYTECODE_PYTHON={RUNTIME_PYTHON}",
        ],
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
    shipped = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.py"))
    assert shipped == [s for s in sources if "__pycache__" not in s]
    assert sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()) == sorted(
        shipped + [bytecode_of(s) for s in shipped]
    ), "the sources and their bytecode, nothing else"


def bytecode_of(source: str) -> str:
    path = Path(source)
    return (path.parent / "__pycache__" / f"{path.stem}.cpython-{RUNTIME.replace('.', '')}.pyc").as_posix()


def unchecked_hash_bytecode(pyc: Path) -> bool:
    """A .pyc the runtime loads as it is, never comparing it with its source (PEP 552: flags 0b01)."""
    header = pyc.read_bytes()[:8]
    return header[:4] == MAGIC and int.from_bytes(header[4:8], "little") == 1


@pytest.mark.parametrize(
    ("layer", "target"), [("dependencies", "build-DependenciesLayer"), ("dlrwatch", "build-DlrwatchLayer")]
)
def test_every_module_of_a_layer_ships_bytecode_for_the_runtime_that_is_never_checked_against_its_source(
    layer: str, target: str, tmp_path: Path
) -> None:
    # /opt is read-only on Lambda: a module without its bytecode would be compiled again on every cold start.
    built = build(layer, target, tmp_path)
    sources = [p for p in built.rglob("*.py") if "__pycache__" not in p.parts]
    assert sources
    missing = [s for s in sources if not (built / bytecode_of(s.relative_to(built).as_posix())).is_file()]
    assert missing == []
    stale = [p for p in built.rglob("*.pyc") if not unchecked_hash_bytecode(p)]
    assert stale == []


def test_nothing_unserved_is_shipped(dependencies: tuple[Path, Path]) -> None:
    swagger = dependencies[0] / "aws_lambda_powertools" / "event_handler" / "openapi" / "swagger_ui"
    assert not [p.name for p in swagger.iterdir() if p.suffix in {".js", ".css"}], "Swagger UI assets"
