"""What the pipeline promises: GitHub Actions test every change, build once, deploy staging, test it, then deploy
prod, with no AWS key stored anywhere; and the bootstrap template lets only this repository's branch and
environments deploy, with roles and a bucket that hold no more than that needs."""

from __future__ import annotations

import copy
import fnmatch
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from dlrwatch_local.translate import translated
from support.template import CloudFormationLoader, as_list

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
BOOTSTRAP = ROOT / "pipeline" / "bootstrap.yaml"
TOOLCHAIN = "./.github/actions/setup-toolchain"
TEST_WORKFLOW = "./.github/workflows/test.yml"

# The bootstrap's outputs, and the GitHub variables a user copies them into.
VARIABLES = {
    "DeployRoleArn": "DEPLOY_ROLE_ARN",
    "CloudFormationExecutionRoleArn": "CFN_EXECUTION_ROLE_ARN",
    "ArtifactsBucketName": "ARTIFACTS_BUCKET",
}
DEPLOY_JOBS = {"deploy-staging": "staging", "deploy-prod": "prod"}
OIDC = "token.actions.githubusercontent.com"
TRUSTED_SUBJECTS = {
    "repo:${GitHubRepository}:ref:refs/heads/${GitHubBranch}",
    "repo:${GitHubRepository}:environment:${StagingEnvironment}",
    "repo:${GitHubRepository}:environment:${ProdEnvironment}",
}
NO_VALUE = {"Ref": "AWS::NoValue"}

# The bootstrap's resources as the tests evaluate them: this account, region and prefix, the app stacks' names.
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-central-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "dlrwatch-pipeline",
    "AppStackPrefix": "dlrwatch",
    "StagingEnvironment": "staging",
    "ProdEnvironment": "prod",
}
APP_STACK = "dlrwatch-staging"


# ---------------------------------------------------------------------------------------------------- workflows
def github_files() -> list[Path]:
    return sorted(p for p in GITHUB.rglob("*") if p.suffix in {".yml", ".yaml"})


@cache
def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def workflow(name: str) -> dict[str, Any]:
    return load(GITHUB / "workflows" / name)


def triggers(flow: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` section (YAML 1.1, which PyYAML speaks, reads the key ``on`` as true)."""
    found = flow.get("on", flow.get(True))
    return found if isinstance(found, dict) else dict.fromkeys([found] if isinstance(found, str) else found)


def jobs(name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = workflow(name)["jobs"]
    return found


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, job)
        for path in github_files()
        if "jobs" in load(path)
        for job_id, job in load(path)["jobs"].items()
    ]


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    """Every step of every workflow and composite action, with where it is."""
    found = []
    for path in github_files():
        document = load(path)
        for job_id, job in document.get("jobs", {}).items():
            found += [(f"{path.name}:{job_id}", step) for step in job.get("steps", [])]
        found += [(str(path.relative_to(ROOT)), step) for step in document.get("runs", {}).get("steps", [])]
    return found


def commands(script: str) -> list[list[str]]:
    """The shell commands of a run: script, one per line once continuations are joined, split as the shell would."""
    return [shlex.split(line) for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def sam(script: str, subcommand: str) -> list[list[str]]:
    return [c for c in commands(script) if c[:2] == ["sam", subcommand]]


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def step_index(job: dict[str, Any], predicate: Any) -> int:
    matches = [i for i, step in enumerate(job["steps"]) if predicate(step)]
    assert len(matches) == 1, f"{len(matches)} matching steps in {job.get('name')}"
    return matches[0]


def test_no_aws_key_and_no_secret_is_referenced_anywhere_in_the_workflows() -> None:
    for path in github_files():
        text = path.read_text()
        for forbidden in (
            "aws-access-key-id",
            "aws-secret-access-key",
            "aws-session-token",
            "aws_access_key_id",
            "aws_secret_access_key",
        ):
            assert forbidden.lower() not in text.lower(), f"{path.name} mentions {forbidden}"
        assert not re.search(r"\$\{\{[^}]*\bsecrets\b", text), f"{path.name} reads a GitHub secret"
        assert "secrets: inherit" not in text, f"{path.name} hands its secrets to another workflow"
    for where, step in all_steps():
        if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
            assert step["with"]["role-to-assume"] == "${{ vars.DEPLOY_ROLE_ARN }}", where
            assert set(step["with"]) <= {"role-to-assume", "role-session-name", "aws-region"}, where


def test_only_the_jobs_that_assume_the_role_may_ask_for_an_oidc_token() -> None:
    for path in github_files():
        top = load(path).get("permissions", {})
        assert top in ({}, {"contents": "read"}), f"{path.name}: workflow-wide permissions {top}"
    for where, job_id, job in all_jobs():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{where}:{job_id} sets no permissions of its own"
        assert set(permissions.values()) <= {"read", "write", "none"}, f"{where}:{job_id}"
        assumes_role = bool(step_using(job, "aws-actions/configure-aws-credentials"))
        assert (permissions.get("id-token") == "write") == assumes_role, f"{where}:{job_id}: id-token {permissions}"
        assert {k for k, v in permissions.items() if v == "write"} <= {"id-token"}, f"{where}:{job_id} writes"
    assert {job_id for _, job_id, job in all_jobs() if job["permissions"].get("id-token")} == set(DEPLOY_JOBS)


def test_prod_needs_staging_and_runs_in_the_prod_environment() -> None:
    deploy = jobs("deploy.yml")
    assert deploy["test"]["uses"] == TEST_WORKFLOW
    assert deploy["build"]["needs"] == "test"
    assert deploy["deploy-staging"]["needs"] == "build"
    assert deploy["deploy-prod"]["needs"] == "deploy-staging"
    for job_id, environment in DEPLOY_JOBS.items():
        assert deploy[job_id]["environment"] == environment
        assert deploy[job_id]["if"] == "github.ref == 'refs/heads/main'"
        assert "continue-on-error" not in deploy[job_id]
    assert triggers(workflow("deploy.yml")) == {"push": {"branches": ["main"]}, "workflow_dispatch": None}


def test_every_sam_deploy_is_unattended_and_succeeds_when_nothing_changed() -> None:
    deploys = [(where, c) for where, step in all_steps() for c in sam(step.get("run", ""), "deploy")]
    assert len(deploys) == len(DEPLOY_JOBS)
    for where, command in deploys:
        assert "--no-fail-on-empty-changeset" in command, where
        assert "--no-confirm-changeset" in command, where
        assert not {"--guided", "-g", "--confirm-changeset", "--fail-on-empty-changeset"} & set(command), where
        assert option(command, "--role-arn") == "$CFN_EXECUTION_ROLE_ARN", where
        assert option(command, "--s3-bucket") == "$ARTIFACTS_BUCKET", where


@pytest.mark.parametrize(("job_id", "stage"), DEPLOY_JOBS.items())
def test_each_stage_packages_and_deploys_the_one_build_with_its_samconfig_environment(job_id: str, stage: str) -> None:
    job = jobs("deploy.yml")[job_id]
    [download] = step_using(job, "actions/download-artifact")
    assert download["with"] == {"name": "sam-build", "path": ".aws-sam/build"}
    [package] = [c for step in job["steps"] for c in sam(step.get("run", ""), "package")]
    [deploy] = [c for step in job["steps"] for c in sam(step.get("run", ""), "deploy")]
    assert option(package, "--config-env") == option(deploy, "--config-env") == stage
    assert option(package, "--template-file") == ".aws-sam/build/template.yaml"
    assert option(package, "--output-template-file") == option(deploy, "--template-file") == f"packaged-{stage}.yaml"
    assert option(package, "--s3-bucket") == "$ARTIFACTS_BUCKET"
    assert not any(sam(step.get("run", ""), "build") for step in job["steps"]), "a deploy job builds again"
    assert step_index(job, lambda s: "download-artifact" in str(s.get("uses"))) < step_index(
        job, lambda s: bool(sam(s.get("run", ""), "package"))
    )


def test_the_build_is_made_once_without_aws_credentials_and_uploaded_for_both_stages() -> None:
    builders = [(w, j) for w, j, job in all_jobs() for s in job.get("steps", []) if s.get("run") == "make build"]
    assert builders == [("deploy.yml", "build")]
    build = jobs("deploy.yml")["build"]
    assert build["permissions"] == {"contents": "read"}
    [upload] = step_using(build, "actions/upload-artifact")
    assert upload["with"]["name"] == "sam-build"
    assert upload["with"]["path"] == ".aws-sam/build"
    assert upload["with"]["include-hidden-files"] is True  # .aws-sam is a dot-directory
    assert upload["with"]["if-no-files-found"] == "error"


def test_the_deployed_stack_tests_run_between_staging_and_prod() -> None:
    staging = jobs("deploy.yml")["deploy-staging"]
    tests = step_index(staging, lambda s: s.get("run", "").startswith("make test-deployed"))
    deployed = step_index(staging, lambda s: bool(sam(s.get("run", ""), "deploy")))
    assert deployed < tests
    assert commands(staging["steps"][tests]["run"]) == [["make", "test-deployed", "STACK_NAME=$STACK_NAME"]]
    assert staging["steps"][tests]["env"] == {"STACK_NAME": "${{ steps.stage.outputs.stack-name }}"}
    assert "continue-on-error" not in staging["steps"][tests]
    assert "if" not in staging["steps"][tests]
    assert jobs("deploy.yml")["deploy-prod"]["needs"] == "deploy-staging"
    prod = jobs("deploy.yml")["deploy-prod"]
    assert not any(s.get("run", "").startswith("make test-deployed") for s in prod["steps"])


def test_prod_is_deployed_exactly_as_staging() -> None:
    deploy = jobs("deploy.yml")

    def staging_only(step: dict[str, Any]) -> bool:  # the deployed-stack tests and the Python they run on
        return step.get("uses") == TOOLCHAIN or step.get("run", "").startswith("make test-deployed")

    staging = [s for s in deploy["deploy-staging"]["steps"] if not staging_only(s)]
    as_prod = yaml.safe_load(yaml.safe_dump(staging).replace("staging", "prod"))
    assert deploy["deploy-prod"]["steps"] == as_prod
    for key in ("runs-on", "permissions", "env", "if"):
        assert deploy["deploy-prod"][key] == deploy["deploy-staging"][key], key


def test_the_stage_region_is_read_from_samconfig_and_handed_to_every_aws_call() -> None:
    for job_id in DEPLOY_JOBS:
        job = jobs("deploy.yml")[job_id]
        [credentials] = step_using(job, "aws-actions/configure-aws-credentials")
        assert credentials["with"]["aws-region"] == "${{ steps.stage.outputs.region }}"
        for command in (c for s in job["steps"] for sub in ("package", "deploy") for c in sam(s.get("run", ""), sub)):
            assert option(command, "--region") == "$STAGE_REGION"


def read_stage(job_id: str, directory: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """Runs the deploy job's own "Read the stage" step in ``directory``, as the runner runs it."""
    [step] = [s for s in jobs("deploy.yml")[job_id]["steps"] if s.get("id") == "stage"]
    output.touch()
    python = Path(sys.executable).parent  # a python3 with tomllib, as on the runner
    return subprocess.run(  # noqa: S603 - bash, with a script of the repository's workflow
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],  # noqa: S607 - as the runner does
        cwd=directory,
        env={"GITHUB_OUTPUT": str(output), "PATH": f"{python}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(("job_id", "stage"), DEPLOY_JOBS.items())
def test_the_stage_settings_the_workflow_reads_are_samconfigs(job_id: str, stage: str, tmp_path: Path) -> None:
    output = tmp_path / "github-output"
    assert read_stage(job_id, ROOT, output).returncode == 0
    read = dict(line.split("=", 1) for line in output.read_text().splitlines())
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())[stage]
    settings = {**config.get("global", {}).get("parameters", {}), **config["deploy"]["parameters"]}
    assert read == {
        "stack-name": settings["stack_name"],
        "region": settings["region"],
        "s3-prefix": settings.get("s3_prefix", settings["stack_name"]),
    }
    # sam refuses --s3-bucket beside resolve_s3, and the workflow always passes the artifacts bucket.
    assert "resolve_s3" not in settings


@pytest.mark.parametrize(("job_id", "stage"), DEPLOY_JOBS.items())
def test_a_stage_without_a_region_stops_its_deploy(job_id: str, stage: str, tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_text(f'version = 0.1\n[{stage}.global.parameters]\nstack_name = "x"\n')
    answer = read_stage(job_id, tmp_path, tmp_path / "github-output")
    assert answer.returncode != 0
    assert f"set stack_name and region for {stage}" in answer.stderr
    assert (tmp_path / "github-output").read_text() == ""


def test_no_expression_is_interpolated_into_a_run_script() -> None:
    """Values reach scripts through env: an expression pasted into a script (a branch name, a commit message) could
    inject shell."""
    for where, step in all_steps():
        assert "${{" not in step.get("run", ""), f"{where}: {step.get('name')}"


def test_every_action_is_pinned_to_a_major_version_or_a_commit() -> None:
    for where, step in all_steps():
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+|[0-9a-f]{40})", uses), f"{where}: {uses}"
        if str(uses).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{where}: the token stays in .git/config"


def test_every_job_runs_on_ubuntu_24_04_with_a_timeout() -> None:
    for where, job_id, job in all_jobs():
        if "uses" not in job:  # a reusable workflow's caller: its jobs are checked where they are
            assert job["runs-on"] == "ubuntu-24.04", f"{where}:{job_id}"
            assert 0 < job["timeout-minutes"] <= 60, f"{where}:{job_id}"


def test_pull_requests_run_make_test_and_a_new_push_cancels_the_run_it_supersedes() -> None:
    pull_request = workflow("pull-request.yml")
    assert set(triggers(pull_request)) == {"pull_request", "workflow_dispatch"}
    assert pull_request["permissions"] == {"contents": "read"}
    assert pull_request["concurrency"]["cancel-in-progress"] is True
    assert "github.event.pull_request.number" in pull_request["concurrency"]["group"]
    assert [job["uses"] for job in pull_request["jobs"].values()] == [TEST_WORKFLOW]


def test_deploys_wait_for_each_other_and_are_never_cancelled() -> None:
    concurrency = workflow("deploy.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    assert "github.ref" in concurrency["group"]


def test_make_test_is_defined_once_with_every_toolchain_it_needs() -> None:
    test = workflow("test.yml")
    assert set(triggers(test)) == {"workflow_call"}
    [job] = test["jobs"].values()
    assert [s.get("run") for s in job["steps"] if "run" in s] == ["make test"]
    [toolchain] = step_using(job, TOOLCHAIN)
    assert "with" not in toolchain  # Java and Node too, and it saves the caches

    action = load(GITHUB / "actions" / "setup-toolchain" / "action.yml")
    steps = action["runs"]["steps"]
    pythons = [s["with"]["python-version"] for s in steps if str(s.get("uses")).startswith("actions/setup-python@")]
    assert pythons == ["3.11", "3.13"]  # 3.13 last: python3 is the Lambda runtime's
    [java] = [s for s in steps if str(s.get("uses")).startswith("actions/setup-java@")]
    assert java["with"] == {"distribution": "temurin", "java-version": "17"}
    [node] = [s for s in steps if str(s.get("uses")).startswith("actions/setup-node@")]
    assert node["with"] == {"node-version": "20"}


def test_the_cache_is_keyed_by_the_exact_pythons_and_every_file_that_says_what_make_installs() -> None:
    steps = load(GITHUB / "actions" / "setup-toolchain" / "action.yml")["runs"]["steps"]
    [keys] = [s for s in steps if s.get("id") == "keys"]
    assert keys["env"]["PYTHON_313"] == "${{ steps.python313.outputs.python-version }}"
    assert keys["env"]["PYTHON_311"] == "${{ steps.python311.outputs.python-version }}"
    assert keys["env"]["INPUTS"] == (
        "${{ hashFiles('Makefile', 'requirements-*.txt', 'layers/*/requirements*.txt', 'package.json', "
        "'package-lock.json') }}"
    )
    caches = [s for s in steps if str(s.get("uses")).startswith(("actions/cache@", "actions/cache/restore@"))]
    installed = [c for c in caches if c["with"]["key"] == "${{ steps.keys.outputs.installed }}"]
    downloads = [c for c in caches if c["with"]["key"] == "${{ steps.keys.outputs.downloads }}"]
    assert len(installed) == len(downloads) == 2  # saving (make test's job) or restoring only (the others)
    for cache_step in installed:
        assert cache_step["with"]["path"].split() == [".venv", ".venv-3.11", ".tools", "node_modules"]
        assert "restore-keys" not in cache_step["with"]  # never a venv made for other inputs
    for cache_step in downloads:
        assert cache_step["with"]["path"].split() == ["~/.cache/uv", "~/.cache/pip"]


def test_the_deploy_jobs_install_the_sam_cli_that_built_the_artifact() -> None:
    [made_with] = re.findall(r"^SAM_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert workflow("deploy.yml")["env"]["SAM_CLI_VERSION"] == made_with
    for job_id in DEPLOY_JOBS:
        [setup] = step_using(jobs("deploy.yml")[job_id], "aws-actions/setup-sam")
        assert setup["with"] == {"use-installer": True, "version": "${{ env.SAM_CLI_VERSION }}"}


def test_the_workflows_use_exactly_the_variables_the_bootstrap_outputs() -> None:
    used = {m for path in github_files() for m in re.findall(r"\bvars\.(\w+)", path.read_text())}
    assert used == set(VARIABLES.values())


# ---------------------------------------------------------------------------------------------------- bootstrap
@cache
def bootstrap() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(BOOTSTRAP.read_text(), Loader=CloudFormationLoader)  # noqa: S506
    return loaded


def resource(name: str) -> dict[str, Any]:
    found: dict[str, Any] = bootstrap()["Resources"][name]
    return found


def present(values: list[Any]) -> list[Any]:
    """A list with each ``Fn::If [condition, value, AWS::NoValue]`` taken as its value (the condition holding)."""
    found = []
    for value in values:
        if isinstance(value, dict) and "Fn::If" in value:
            _, then, otherwise = value["Fn::If"]
            assert otherwise == NO_VALUE, value
            value = then
        found.append(value)
    return found


def trust_faults(document: dict[str, Any]) -> list[str]:
    """Why ``document`` would let anyone but this repository's branch and environments assume the deploy role."""
    faults = []
    [statement, *others] = document["Statement"]
    if others:
        faults.append(f"{len(others)} more statements")
    if statement.get("Effect") != "Allow" or as_list(statement.get("Action")) != ["sts:AssumeRoleWithWebIdentity"]:
        faults.append(f"grants {statement.get('Action')}")
    provider = {"Fn::If": ["CreateOidcProvider", {"Ref": "GitHubOidcProvider"}, {"Ref": "OidcProviderArn"}]}
    if statement.get("Principal") != {"Federated": provider}:
        faults.append(f"trusts {statement.get('Principal')}")
    condition = statement.get("Condition", {})
    if set(condition) != {"StringEquals"}:
        faults.append(f"compares with {sorted(condition)}: only StringEquals takes no wildcard")
    claims = condition.get("StringEquals", {})
    if set(claims) != {f"{OIDC}:aud", f"{OIDC}:sub"}:
        faults.append(f"checks the claims {sorted(claims)}")
    if claims.get(f"{OIDC}:aud") != "sts.amazonaws.com":
        faults.append(f"audience {claims.get(f'{OIDC}:aud')}")
    subjects = present(as_list(claims.get(f"{OIDC}:sub", [])))
    texts = [s["Fn::Sub"] if isinstance(s, dict) and set(s) == {"Fn::Sub"} else s for s in subjects]
    if sorted(map(str, texts)) != sorted(TRUSTED_SUBJECTS):
        faults.append(f"subjects {texts}")
    return faults


def test_the_oidc_provider_is_githubs_for_sts_and_made_only_when_none_is_given() -> None:
    provider = resource("GitHubOidcProvider")
    assert provider["Condition"] == "CreateOidcProvider"
    assert bootstrap()["Conditions"]["CreateOidcProvider"] == {"Fn::Equals": [{"Ref": "OidcProviderArn"}, ""]}
    assert provider["Properties"]["Url"] == f"https://{OIDC}"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]


def test_only_this_repositorys_branch_and_environments_may_assume_the_deploy_role() -> None:
    assert trust_faults(resource("DeployRole")["Properties"]["AssumeRolePolicyDocument"]) == []
    parameters = bootstrap()["Parameters"]
    assert "Default" not in parameters["GitHubRepository"]  # the user names it
    assert re.fullmatch(parameters["GitHubRepository"]["AllowedPattern"], "owner/name")
    for wildcard in ("*", "owner/*", "*/*", "owner/na?e"):
        assert not re.fullmatch(parameters["GitHubRepository"]["AllowedPattern"], wildcard)
    assert (parameters["GitHubBranch"]["Default"], parameters["StagingEnvironment"]["Default"]) == ("main", "staging")
    assert parameters["ProdEnvironment"]["Default"] == "prod"
    for name in ("GitHubBranch", "StagingEnvironment", "ProdEnvironment"):
        assert not re.fullmatch(parameters[name]["AllowedPattern"], "*"), name


def subject_list(document: dict[str, Any]) -> list[Any]:
    found: list[Any] = document["Statement"][0]["Condition"]["StringEquals"][f"{OIDC}:sub"]
    return found


def every_repository(document: dict[str, Any]) -> None:
    subject_list(document)[0] = "repo:*"


def another_repository(document: dict[str, Any]) -> None:
    subject_list(document)[1] = {"Fn::Sub": "repo:someone/else:environment:${StagingEnvironment}"}


def any_ref_of_this_repository(document: dict[str, Any]) -> None:
    subject_list(document)[0] = {"Fn::Sub": "repo:${GitHubRepository}:*"}


def like_instead_of_equals(document: dict[str, Any]) -> None:
    condition = document["Statement"][0]["Condition"]
    condition["StringLike"] = condition.pop("StringEquals")


def any_audience(document: dict[str, Any]) -> None:
    del document["Statement"][0]["Condition"]["StringEquals"][f"{OIDC}:aud"]


def a_second_way_in(document: dict[str, Any]) -> None:
    document["Statement"].append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})


def pull_requests_too(document: dict[str, Any]) -> None:
    subject_list(document).append({"Fn::Sub": "repo:${GitHubRepository}:pull_request"})


@pytest.mark.parametrize(
    "widen",
    [
        every_repository,
        another_repository,
        any_ref_of_this_repository,
        like_instead_of_equals,
        any_audience,
        a_second_way_in,
        pull_requests_too,
    ],
)
def test_a_wider_trust_would_be_caught(widen: Any) -> None:
    document = copy.deepcopy(resource("DeployRole")["Properties"]["AssumeRolePolicyDocument"])
    widen(document)
    assert trust_faults(document) != []


def test_the_artifacts_bucket_is_private_encrypted_versioned_and_forgets_old_artifacts() -> None:
    bucket = resource("ArtifactsBucket")
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    properties = bucket["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"}
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    retention = {"Ref": "ArtifactsRetentionDays"}
    [rule] = [r for r in properties["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert rule["Status"] == "Enabled"
    assert "Prefix" not in rule
    assert "Filter" not in rule  # every object
    assert rule["ExpirationInDays"] == retention
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": retention}
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert bootstrap()["Parameters"]["ArtifactsRetentionDays"]["MinValue"] >= 1


def test_the_artifacts_bucket_answers_over_tls_only() -> None:
    policy = resource("ArtifactsBucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": "ArtifactsBucket"}
    bucket, objects = {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}, {"Fn::Sub": "${ArtifactsBucket.Arn}/*"}
    assert {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket, objects],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in policy["PolicyDocument"]["Statement"]
    assert all(s["Effect"] == "Deny" for s in policy["PolicyDocument"]["Statement"])  # no grant to anyone


def test_the_outputs_are_the_three_github_variables() -> None:
    outputs = bootstrap()["Outputs"]
    assert set(outputs) == set(VARIABLES)
    for output, variable in VARIABLES.items():
        assert f"GitHub variable {variable} " in outputs[output]["Description"], output
    assert outputs["DeployRoleArn"]["Value"] == {"Fn::GetAtt": ["DeployRole", "Arn"]}
    assert outputs["CloudFormationExecutionRoleArn"]["Value"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert outputs["ArtifactsBucketName"]["Value"] == {"Ref": "ArtifactsBucket"}


# What the roles allow, evaluated as IAM would for one account, region and prefix (conditions aside).
def evaluate(value: Any) -> str:
    """A resource ARN of the bootstrap as a plain pattern (Fn::Sub and Fn::GetAtt of this template)."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        name = value["Fn::GetAtt"][0]
        return {
            "ArtifactsBucket": "arn:aws:s3:::dlrwatch-pipeline-artifactsbucket-abc123",
            "CloudFormationExecutionRole": "arn:aws:iam::123456789012:role/pipeline/dlrwatch-pipeline-cfn-execution",
            "DeployRole": "arn:aws:iam::123456789012:role/pipeline/dlrwatch-pipeline-deploy",
        }[name]
    text = value["Fn::Sub"]
    text = text.replace("${ArtifactsBucket.Arn}", evaluate({"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}))
    return re.sub(r"\$\{([\w:]+)\}", lambda m: PSEUDO[m.group(1)], text)


def policy_statements(role: str) -> list[dict[str, Any]]:
    found = []
    for policy in resource(role)["Properties"]["Policies"]:
        found += present(policy["PolicyDocument"]["Statement"])
    return found


def allows(role: str, action: str, arn: str) -> bool:
    def matching(effect: str) -> bool:
        return any(
            s["Effect"] == effect
            and any(fnmatch.fnmatchcase(action, a) for a in as_list(s["Action"]))
            and any(fnmatch.fnmatchcase(arn, evaluate(r)) for r in as_list(s["Resource"]))
            for s in policy_statements(role)
        )

    return matching("Allow") and not matching("Deny")


def test_the_deploy_role_changes_the_app_stacks_and_nothing_else() -> None:
    stack = "arn:aws:cloudformation:eu-central-1:123456789012:stack/{}/7d3e8a10-0000-0000-0000-000000000000"
    for action in ("cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"):
        assert allows("DeployRole", action, stack.format("dlrwatch-staging"))
        assert allows("DeployRole", action, stack.format("dlrwatch-prod"))
        assert not allows("DeployRole", action, stack.format("dlrwatch-pipeline")), "the bootstrap stack itself"
        assert not allows("DeployRole", action, stack.format("other-app"))
    transform = "arn:aws:cloudformation:eu-central-1:aws:transform/Serverless-2016-10-31"
    assert allows("DeployRole", "cloudformation:CreateChangeSet", transform)
    for action in ("cloudformation:DeleteStack", "cloudformation:UpdateStack", "cloudformation:CreateStack"):
        assert not allows("DeployRole", action, stack.format("dlrwatch-staging")), action
    [pass_role] = [s for s in policy_statements("DeployRole") if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    iam = {a for s in policy_statements("DeployRole") if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    assert {a for a in iam if a.startswith("iam:")} == {"iam:PassRole"}
    assert all("*" not in a for a in iam)


def test_the_deploy_role_reads_the_staging_secrets_and_never_prods() -> None:
    parameter = "arn:aws:ssm:eu-central-1:123456789012:parameter/dlrwatch/{}/{}"
    assert allows("DeployRole", "ssm:GetParameter", parameter.format("staging", "callback-token"))
    assert allows("DeployRole", "ssm:GetParameter", parameter.format("staging", "sevenio-signing-key"))
    assert not allows("DeployRole", "ssm:GetParameter", parameter.format("prod", "callback-token"))
    assert not allows("DeployRole", "ssm:GetParameter", parameter.format("staging", "sevenio-api-key"))


def test_the_execution_role_never_reaches_the_pipelines_own_roles() -> None:
    for role in ("DeployRole", "CloudFormationExecutionRole"):
        assert resource(role)["Properties"]["Path"] == "/pipeline/"
        arn = evaluate({"Fn::GetAtt": [role, "Arn"]})
        for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:PassRole"):
            assert not allows("CloudFormationExecutionRole", action, arn), (role, action)
    app_role = "arn:aws:iam::123456789012:role/dlrwatch-staging-CallbackFunctionRole-ABC123"
    assert allows("CloudFormationExecutionRole", "iam:PutRolePolicy", app_role)


def test_the_execution_role_attaches_only_the_managed_policies_sam_attaches() -> None:
    attached = {
        arn
        for r in translated()["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        for arn in r["Properties"].get("ManagedPolicyArns", [])
    }
    [statement] = [s for s in policy_statements("CloudFormationExecutionRole") if "iam:AttachRolePolicy" in s["Action"]]
    assert {evaluate(arn) for arn in statement["Condition"]["ArnEquals"]["iam:PolicyARN"]} == attached


# The call that creates each resource type of the app stack, as CloudFormation makes it.
CREATED_BY = {
    "AWS::ApiGatewayV2::Api": "apigateway:POST",
    "AWS::ApiGatewayV2::Integration": "apigateway:POST",
    "AWS::ApiGatewayV2::Route": "apigateway:POST",
    "AWS::ApiGatewayV2::Stage": "apigateway:POST",
    "AWS::CloudWatch::Alarm": "cloudwatch:PutMetricAlarm",
    "AWS::CloudWatch::Dashboard": "cloudwatch:PutDashboard",
    "AWS::DynamoDB::Table": "dynamodb:CreateTable",
    "AWS::Events::Archive": "events:CreateArchive",
    "AWS::Events::EventBus": "events:CreateEventBus",
    "AWS::IAM::Role": "iam:CreateRole",
    "AWS::KMS::Key": "kms:CreateKey",
    "AWS::Lambda::EventInvokeConfig": "lambda:PutFunctionEventInvokeConfig",
    "AWS::Lambda::EventSourceMapping": "lambda:CreateEventSourceMapping",
    "AWS::Lambda::Function": "lambda:CreateFunction",
    "AWS::Lambda::LayerVersion": "lambda:PublishLayerVersion",
    "AWS::Lambda::Permission": "lambda:AddPermission",
    "AWS::Logs::LogGroup": "logs:CreateLogGroup",
    "AWS::SNS::Subscription": "sns:Subscribe",
    "AWS::SNS::Topic": "sns:CreateTopic",
    "AWS::SQS::Queue": "sqs:CreateQueue",
    "AWS::SSM::Parameter": "ssm:PutParameter",
    "AWS::Scheduler::Schedule": "scheduler:CreateSchedule",
}


def physical_name(logical_id: str) -> str:
    """The name CloudFormation gives a resource the template does not name: stack, logical id, a suffix."""
    return f"{APP_STACK}-{logical_id}-A1B2C3D4E5F6"


def app_value(value: Any) -> str:
    """A name property of the translated app template, as it is in the staging stack."""
    if isinstance(value, str):
        return value
    if "Ref" in value:  # the stack's name, or a resource's: a topic's Ref is its ARN
        if value["Ref"] == "AWS::StackName":
            return APP_STACK
        kind = translated()["Resources"][value["Ref"]]["Type"]
        name = physical_name(value["Ref"])
        return f"arn:aws:sns:eu-central-1:123456789012:{name}" if kind == "AWS::SNS::Topic" else name
    text = value["Fn::Sub"]
    known = {**PSEUDO, "AWS::StackName": APP_STACK, "Environment": "staging"}
    return re.sub(r"\$\{([\w:]+)\}", lambda m: known.get(m.group(1), physical_name(m.group(1))), text)


def app_arn(logical_id: str, kind: str, properties: dict[str, Any]) -> str:
    """The ARN the create call is authorized on (``*`` where the service names no resource before it exists)."""

    def name(key: str) -> str:
        return app_value(properties[key]) if key in properties else physical_name(logical_id)

    region, account = "eu-central-1", "123456789012"
    apis = f"arn:aws:apigateway:{region}::/apis"
    arns = {
        "AWS::ApiGatewayV2::Api": lambda: apis,
        "AWS::ApiGatewayV2::Integration": lambda: f"{apis}/a1b2c3d4e5/integrations",
        "AWS::ApiGatewayV2::Route": lambda: f"{apis}/a1b2c3d4e5/routes",
        "AWS::ApiGatewayV2::Stage": lambda: f"{apis}/a1b2c3d4e5/stages",
        "AWS::CloudWatch::Alarm": lambda: f"arn:aws:cloudwatch:{region}:{account}:alarm:{name('AlarmName')}",
        "AWS::CloudWatch::Dashboard": lambda: f"arn:aws:cloudwatch::{account}:dashboard/{name('DashboardName')}",
        "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{region}:{account}:table/{name('TableName')}",
        "AWS::Events::Archive": lambda: f"arn:aws:events:{region}:{account}:archive/{name('ArchiveName')}",
        "AWS::Events::EventBus": lambda: f"arn:aws:events:{region}:{account}:event-bus/{name('Name')}",
        "AWS::IAM::Role": lambda: f"arn:aws:iam::{account}:role/{name('RoleName')}",
        "AWS::Lambda::Function": lambda: f"arn:aws:lambda:{region}:{account}:function:{name('FunctionName')}",
        "AWS::Lambda::LayerVersion": lambda: f"arn:aws:lambda:{region}:{account}:layer:{name('LayerName')}",
        "AWS::Lambda::Permission": lambda: f"arn:aws:lambda:{region}:{account}:function:{name('FunctionName')}",
        "AWS::Lambda::EventInvokeConfig": lambda: (
            f"arn:aws:lambda:{region}:{account}:function:{name('FunctionName')}:{properties['Qualifier']}"
        ),
        "AWS::Logs::LogGroup": lambda: f"arn:aws:logs:{region}:{account}:log-group:{name('LogGroupName')}",
        "AWS::SNS::Topic": lambda: f"arn:aws:sns:{region}:{account}:{name('TopicName')}",
        "AWS::SNS::Subscription": lambda: app_value(properties["TopicArn"]),
        "AWS::SQS::Queue": lambda: f"arn:aws:sqs:{region}:{account}:{name('QueueName')}",
        "AWS::SSM::Parameter": lambda: f"arn:aws:ssm:{region}:{account}:parameter{name('Name')}",
        "AWS::Scheduler::Schedule": lambda: (
            f"arn:aws:scheduler:{region}:{account}:schedule/{properties.get('GroupName', 'default')}/{name('Name')}"
        ),
    }
    return arns[kind]() if kind in arns else "*"


def test_the_execution_role_may_create_every_resource_of_the_app_stack_under_the_stacks_name() -> None:
    """From template.yaml as CloudFormation receives it: a new resource type, or a resource named outside the
    stack's name, fails here until pipeline/bootstrap.yaml grants what creating it takes."""
    for logical_id, app_resource in translated()["Resources"].items():
        kind, properties = app_resource["Type"], app_resource.get("Properties", {})
        assert kind in CREATED_BY, f"{logical_id}: {kind} is new: grant it in pipeline/bootstrap.yaml, add it here"
        arn = app_arn(logical_id, kind, properties)
        assert allows("CloudFormationExecutionRole", CREATED_BY[kind], arn), f"{logical_id}: {CREATED_BY[kind]} {arn}"


def test_the_execution_role_passes_the_app_roles_only_to_lambda_and_the_scheduler() -> None:
    [statement] = [s for s in policy_statements("CloudFormationExecutionRole") if "iam:PassRole" in s["Action"]]
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "scheduler.amazonaws.com"]}
    }
    assert evaluate(statement["Resource"]) == "arn:aws:iam::123456789012:role/dlrwatch-*"


def test_the_execution_role_is_cloudformations_alone() -> None:
    trust = resource("CloudFormationExecutionRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
