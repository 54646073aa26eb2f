"""template.yaml as CloudFormation receives it: packaged (each local code directory replaced by an S3 object named
by a hash of its files, as ``sam package`` names it), then the AWS::Serverless transform applied offline, by the same
translator (aws-sam-translator) that runs behind the transform, with no AWS call.

``python -m dlrwatch_local.translate template.yaml out.json`` writes it for cfn-lint; the tests read ``translated()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from dlrwatch_local.template import TEMPLATE, CloudFormationLoader

REGION = "eu-central-1"  # any commercial region: the transform only needs the partition


class NoManagedPolicies:
    """The managed policy names the transform may look up in IAM: the template uses inline statements only, so none
    (a managed policy given by name would fail the translation here, where nothing reaches IAM)."""

    def load(self) -> dict[str, str]:
        return {}


ARTIFACTS_BUCKET = "dlrwatch-artifacts"
CODE_PROPERTIES = ("CodeUri", "ContentUri")


def content_hash(directory: Path) -> str:
    """A hash of the files under ``directory`` (names and bytes): the same files, the same hash."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def packaged(template: dict[str, Any], root: Path) -> dict[str, Any]:
    """``template`` with each local CodeUri and ContentUri replaced by the S3 URI of its content."""
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for name in CODE_PROPERTIES:
            if isinstance(properties.get(name), str) and not properties[name].startswith("s3://"):
                properties[name] = f"s3://{ARTIFACTS_BUCKET}/{content_hash(root / properties[name])}"
    return template


def translate(path: Path) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    import yaml
    from samtranslator.translator.transform import transform  # type: ignore[import-untyped]  # a dev dependency

    with path.open() as source:
        template = yaml.load(source, Loader=CloudFormationLoader)  # noqa: S506 - the safe loader, with CFN tags
    parameters = {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    translated: dict[str, Any] = transform(packaged(template, path.parent), parameters, NoManagedPolicies())
    return translated


@cache
def translated() -> dict[str, Any]:
    """The repository's template.yaml, translated once per process."""
    return translate(TEMPLATE)


def main(argv: list[str]) -> int:
    source, target = Path(argv[1]), Path(argv[2])
    cloudformation = translate(source)
    target.write_text(json.dumps(cloudformation, indent=1, sort_keys=True) + "\n")
    print(f"{source} translated: {len(cloudformation['Resources'])} CloudFormation resources in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
