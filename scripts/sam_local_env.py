"""The environment `sam local invoke FUNCTION` gives a function, worked out by the SAM CLI's own code without Docker.

Run with the SAM CLI's interpreter (`.tools/sam/bin/python scripts/sam_local_env.py CallbackFunction`): it reads
samconfig.toml's `default.local_invoke` parameters (parameter_overrides, env_vars) as `sam local invoke` does,
resolves template.yaml's Globals, conditions and intrinsic functions with the SAM CLI's providers, applies the
env_vars file with its precedence rules, and prints the variables as JSON. The credentials are left out: the SAM
CLI passes the caller's own, and they are the caller's business.
"""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from pathlib import Path

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def local_invoke_settings() -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    settings: dict[str, str] = config["default"]["local_invoke"]["parameters"]
    return settings


def environment(function_id: str) -> dict[str, str]:
    settings = local_invoke_settings()
    overrides = dict(pair.split("=", 1) for pair in shlex.split(settings.get("parameter_overrides", "")))
    stacks, _ = SamLocalStackProvider.get_stacks(str(ROOT / "template.yaml"), parameter_overrides=overrides)
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    function = provider.get(function_id)
    if function is None:
        raise SystemExit(f"no function {function_id} in template.yaml")
    env_vars = json.loads((ROOT / settings["env_vars"]).read_text()) if "env_vars" in settings else {}
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type]  # no container is started: only its environment is made
        function_provider=provider,
        cwd=str(ROOT),
        real_path=str(ROOT),
        aws_region="eu-central-1",
        env_vars_values=env_vars,
    )
    resolved: dict[str, str] = runner._make_env_vars(function).resolve()
    return {name: value for name, value in resolved.items() if name not in CREDENTIALS}


if __name__ == "__main__":
    print(json.dumps(environment(sys.argv[1]), indent=1, sort_keys=True))
