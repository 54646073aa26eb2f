"""scripts/audit_dependencies.py over a stand-in for pip-audit: what it fails on, what it allows, and that an audit
no database answered is never reported clean."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audit_dependencies.py"
ALLOWLIST = ROOT / "scripts" / "audit-allowlist.txt"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


audit = load()

CLEAN = {"name": "requests", "version": "2.34.2", "vulns": []}
URLLIB3 = {"name": "urllib3", "version": "2.8.0", "vulns": []}
VULNERABLE = {
    "name": "urllib3",
    "version": "2.8.0",
    "vulns": [{"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2099-1234"], "fix_versions": ["2.8.1"]}],
}


def not_answered(name: str, version: str) -> dict[str, str]:
    # What pip-audit writes when PyPI's per-version JSON API answers 404 for a package that exists.
    return {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} ({version})"}


def fake_pip_audit(tmp_path: Path, answers: dict[str, Any]) -> str:
    """An executable that answers like pip-audit: the JSON report per service, or a crash for a service whose
    answer is a string (pip-audit's traceback when it cannot connect)."""
    script = tmp_path / "pip-audit"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"answers = json.loads({json.dumps(json.dumps(answers))})\n"
        "args = sys.argv[1:]\n"
        "answer = answers[args[args.index('--vulnerability-service') + 1]]\n"
        "if isinstance(answer, str):\n"
        "    sys.exit(f'Traceback (most recent call last):\\n{answer}')\n"
        "open(args[args.index('--output') + 1], 'w').write(json.dumps({'dependencies': answer, 'fixes': []}))\n"
        "sys.exit(1 if any(d.get('vulns') for d in answer) else 0)\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs the audit of two targets against the stand-in's answers; the exit status and all it said."""

    def go(answers: dict[str, Any], allowlist: str = "") -> tuple[int, str]:
        listed = tmp_path / "allowlist.txt"
        listed.write_text(allowlist)
        command = ["--pip-audit", fake_pip_audit(tmp_path, answers), "--allowlist", str(listed)]
        status = audit.main([*command, f"layer={tmp_path}", f"dev={tmp_path}"])
        out = capsys.readouterr()
        return status, out.out + out.err

    return go


def test_clean_when_a_database_answered_for_every_package(audited: Any) -> None:
    status, said = audited({"pypi": [CLEAN, URLLIB3], "osv": "ConnectionError: api.osv.dev"})
    assert status == 0
    assert "No known vulnerabilities" in said
    assert "layer 2 (pypi)" in said


def test_a_known_vulnerability_fails(audited: Any) -> None:
    status, said = audited({"pypi": [CLEAN, VULNERABLE], "osv": "unused"})
    assert status == 1
    assert "KNOWN VULNERABILITY: GHSA-aaaa-bbbb-cccc (CVE-2099-1234): urllib3 2.8.0" in said
    assert "fixed in 2.8.1" in said
    assert "No known vulnerabilities" not in said


def test_an_allowed_vulnerability_passes_with_its_reason_shown(audited: Any) -> None:
    reason = "the flaw is in proxy handling, and the layer never configures a proxy"
    status, said = audited({"pypi": [CLEAN, VULNERABLE], "osv": "unused"}, f"# why\n\nCVE-2099-1234 {reason}\n")
    assert status == 0
    assert f"because: {reason}" in said


@pytest.mark.parametrize("entry", ["CVE-2099-1234", "CVE-2099-1234   ", "CVE-2099-1234 not used"])
def test_an_allow_list_entry_without_a_reason_is_refused(audited: Any, entry: str) -> None:
    status, said = audited({"pypi": [CLEAN, VULNERABLE], "osv": "unused"}, f"{entry}\n")
    assert status == 3
    assert "has no reason" in said
    assert "No known vulnerabilities" not in said


def test_a_malformed_or_repeated_entry_is_refused() -> None:
    with pytest.raises(audit.RefusedAllowList, match="not a vulnerability id"):
        audit.read_allowlist("urllib3 is fine, we checked it ourselves\n")
    with pytest.raises(audit.RefusedAllowList, match="twice"):
        audit.read_allowlist("CVE-2099-1 reason one two three\nCVE-2099-1 reason one two three\n")


def test_no_database_answering_is_a_loud_failure_never_a_clean_result(audited: Any) -> None:
    status, said = audited(
        {
            "pypi": [not_answered("requests", "2.34.2"), not_answered("urllib3", "2.8.0")],
            "osv": "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'",
        }
    )
    assert status == 2
    assert "DEPENDENCY AUDIT COULD NOT RUN" in said
    assert "layer: 2 of 2 packages unaudited: requests, urllib3" in said
    assert "Failed to resolve 'api.osv.dev'" in said
    assert "NOT a clean result" in said
    assert "No known vulnerabilities" not in said


def test_a_service_that_crashes_for_every_package_is_a_failure(audited: Any) -> None:
    status, said = audited({"pypi": "ProxyError: Unable to connect to proxy", "osv": "ConnectionError: refused"})
    assert status == 2
    assert "layer: no service gave an answer" in said
    assert "ProxyError" in said


def test_packages_one_service_missed_are_asked_of_the_next(audited: Any) -> None:
    status, said = audited({"pypi": [CLEAN, not_answered("urllib3", "2.8.0")], "osv": [CLEAN, VULNERABLE]})
    assert status == 1
    assert "KNOWN VULNERABILITY: GHSA-aaaa-bbbb-cccc" in said
    status, said = audited({"pypi": [CLEAN, not_answered("urllib3", "2.8.0")], "osv": [CLEAN, URLLIB3]})
    assert status == 0
    assert "osv/pypi" in said


def test_one_package_left_unaudited_fails_even_if_the_rest_is_clean(audited: Any) -> None:
    status, said = audited({"pypi": [CLEAN, not_answered("urllib3", "2.8.0")], "osv": "ConnectionError"})
    assert status == 2
    assert "1 of 2 packages unaudited: urllib3" in said


def test_the_committed_allow_list_is_accepted() -> None:
    audit.read_allowlist(ALLOWLIST.read_text())  # raises RefusedAllowList for an entry without a reason
