"""The deployed-stack tier's fixtures: one target for the whole tier, the stack on AWS that ``DLRWATCH_STACK_NAME``
names (with the caller's own region and credentials), else `make run`'s stack, started once for the tier."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.deployed import STACK_VARIABLE, Target, aws_target, aws_target_wanted, local_target

if aws_target_wanted():
    # Replaces the sandbox every other tier runs in (tests/conftest.py), for the AWS target only: its calls need the
    # caller's region and credentials. For the local target that sandbox applies unchanged.
    @pytest.fixture(autouse=True)
    def aws_sandbox() -> None:
        """The caller's environment, untouched: the AWS target reads its region and credentials from it."""


@pytest.fixture(autouse=True)
def one_worker(request: pytest.FixtureRequest) -> None:
    """Under `--dist loadgroup` (make test) the tier runs on one worker, which starts one local stack: spread over
    the workers, it would start one per worker (~4 s and 200 MB each). pytest-xdist marks a grouped test's id."""
    if getattr(request.config.option, "loadgroup", False) and not request.node.nodeid.endswith("@deployed"):
        pytest.fail("pytest-xdist did not group the deployed tier (xdist_group): check the pytest and xdist versions")


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if aws_target_wanted():
        deployed = aws_target(os.environ[STACK_VARIABLE])
        try:
            yield deployed
        finally:
            deployed.close()
    else:
        with local_target(tmp_path_factory.mktemp("deployed-stack")) as local:
            yield local


@pytest.fixture(autouse=True)
def finished(target: Target) -> Iterator[None]:
    """Every message a test registered ends the test with a final status, pushed here if the test did not push one,
    so that the stack never polls a provider about a made-up id."""
    yield
    left = target.finish()
    assert not left, f"messages left without a final status: {left}"
