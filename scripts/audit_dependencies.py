"""Known vulnerabilities in what dlrwatch ships (the layer) and what it is developed with (the venv), by pip-audit.

    audit_dependencies.py --pip-audit .tools/pip-audit/bin/pip-audit --allowlist scripts/audit-allowlist.txt \
        layer=.aws-sam/build/DependenciesLayer/python dev=.venv/lib/python3.13/site-packages

Each target is a directory of installed distributions, audited exactly as installed (versions included). Every
package must be answered by a vulnerability database: pip-audit's services are asked in turn (``--service``,
PyPI's JSON API first, then OSV), and a package that none of them answered for is not "clean", it is unaudited.
Exit status:

0  every package was audited and every known vulnerability is allowed by the allow-list, with a reason;
1  a known vulnerability is not on the allow-list;
2  the audit could not run: no database answered for some package (said loudly, never reported as clean);
3  the allow-list is refused (an entry without a reason, a malformed id, an id twice).

The allow-list has one entry a line: the vulnerability id (PYSEC-..., GHSA-..., CVE-...; an alias counts), then
why it does not apply here. Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ID = re.compile(r"^[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$")
MIN_REASON_WORDS = 3
SERVICES = ("pypi", "osv")
RULE = "=" * 100


class RefusedAllowList(ValueError):
    pass


def read_allowlist(text: str) -> dict[str, str]:
    """Vulnerability id -> why it does not apply; a line without a reason is refused, not ignored."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        vuln_id, reason = vuln_id.strip(), reason.strip()
        if not ID.match(vuln_id):
            raise RefusedAllowList(
                f"line {number}: {vuln_id!r} is not a vulnerability id (PYSEC-..., GHSA-..., CVE-...)"
            )
        if len(reason.split()) < MIN_REASON_WORDS:
            raise RefusedAllowList(
                f"line {number}: {vuln_id} has no reason: say, after the id, why it does not apply here"
            )
        if vuln_id in entries:
            raise RefusedAllowList(f"line {number}: {vuln_id} is listed twice")
        entries[vuln_id] = reason
    return entries


@dataclass
class Vulnerability:
    target: str
    package: str
    version: str
    id: str
    aliases: list[str]
    fix_versions: list[str]

    @property
    def ids(self) -> list[str]:
        return [self.id, *self.aliases]

    def __str__(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "; no fixed version"
        return f"{self.id}{also}: {self.package} {self.version} in {self.target}{fix}"


@dataclass
class TargetResult:
    """What the services said about one target: each package is audited by the first service that answers for it."""

    target: str
    audited: dict[str, str] = field(default_factory=dict)  # package -> service that answered
    unaudited: dict[str, str] = field(default_factory=dict)  # package -> why not (last service's reason)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # a service that gave no answer at all, and why


def merge(result: TargetResult, service: str, report: dict[str, Any]) -> None:
    """Add one service's pip-audit JSON report for the target to what the earlier services said."""
    for dependency in report.get("dependencies", []):
        name = dependency["name"]
        if name in result.audited:
            continue
        if "skip_reason" in dependency:
            result.unaudited[name] = f"{service}: {dependency['skip_reason']}"
            continue
        result.unaudited.pop(name, None)
        result.audited[name] = service
        for vuln in dependency.get("vulns", []):
            result.vulnerabilities.append(
                Vulnerability(
                    result.target,
                    name,
                    dependency.get("version", "?"),
                    vuln["id"],
                    list(vuln.get("aliases", [])),
                    list(vuln.get("fix_versions", [])),
                )
            )


def run_pip_audit(pip_audit: str, path: str, service: str, timeout: int, osv_url: str | None) -> dict[str, Any] | str:
    """pip-audit's JSON report for the packages installed in ``path``, or why there is none."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "report.json"
        command = [pip_audit, "--path", path, "--vulnerability-service", service, "--format", "json"]
        command += ["--output", str(out), "--progress-spinner", "off", "--desc", "off", "--timeout", str(timeout)]
        if service == "osv" and osv_url:
            command += ["--osv-url", osv_url]
        # Exit 1 also means "vulnerabilities found": the report file, not the status, says whether it ran.
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own arguments)
        try:
            report: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
            return lines[-1] if lines else f"pip-audit exited {done.returncode} without a report"
        return report


def audit(
    pip_audit: str, targets: dict[str, str], services: list[str], timeout: int, osv_url: str | None = None
) -> list[TargetResult]:
    results = []
    for target, path in targets.items():
        result = TargetResult(target)
        for service in services:
            report = run_pip_audit(pip_audit, path, service, timeout, osv_url)
            if isinstance(report, str):
                result.failures.append(f"{service}: {report}")
                continue
            merge(result, service, report)
            if not result.unaudited and result.audited:
                break
        if not result.audited and not result.unaudited and not result.failures:
            result.failures.append(f"no installed package found in {path}")
        results.append(result)
    return results


def verdict(results: list[TargetResult], allowlist: dict[str, str]) -> tuple[int, list[str]]:
    """The exit status and what to print, from the services' answers and the allow-list."""
    lines: list[str] = []
    if any(r.unaudited or r.failures or not r.audited for r in results):
        lines += [RULE, "DEPENDENCY AUDIT COULD NOT RUN: no vulnerability database answered for these packages:", ""]
        for r in results:
            names = sorted(r.unaudited)
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            if names:
                lines.append(f"  {r.target}: {len(names)} of {len(names) + len(r.audited)} packages unaudited: {shown}")
            elif not r.audited:
                lines.append(f"  {r.target}: no service gave an answer")
        reasons: dict[str, int] = {}
        for r in results:
            for name, why in r.unaudited.items():
                general = re.sub(rf":\s*{re.escape(name)}\s*\([^)]*\)\s*$", "", why)
                reasons[general] = reasons.get(general, 0) + 1
        lines += [f"  {why} ({n} packages)" for why, n in sorted(reasons.items())]
        lines += [f"  {r.target}: {failure}" for r in results for failure in r.failures]
        if any("not found on PyPI" in why for why in reasons):
            lines.append(
                '  (pip-audit says "not found on PyPI" when PyPI\'s per-version JSON API answers 404: the database'
                " did not answer, the package exists.)"
            )
        lines += [
            "",
            "Nothing is known about vulnerabilities in them. This is NOT a clean result: the audit failed.",
            RULE,
        ]
        return 2, lines
    allowed: list[tuple[Vulnerability, str]] = []
    refused: list[Vulnerability] = []
    for vuln in (v for r in results for v in r.vulnerabilities):
        reason = next((allowlist[i] for i in vuln.ids if i in allowlist), None)
        if reason is None:
            refused.append(vuln)
        else:
            allowed.append((vuln, reason))
    for vuln, reason in allowed:
        lines.append(f"allowed: {vuln}\n  because: {reason}")
    found = {i for r in results for v in r.vulnerabilities for i in v.ids}
    lines += [
        f"note: allow-list entry {i} matches no known vulnerability any more: remove it"
        for i in allowlist.keys() - found
    ]
    counts = ", ".join(f"{r.target} {len(r.audited)} ({'/'.join(sorted(set(r.audited.values())))})" for r in results)
    if refused:
        lines += [f"KNOWN VULNERABILITY: {vuln}" for vuln in refused]
        lines.append(
            f"{len(refused)} known vulnerabilities. Upgrade the package, or add the id to the allow-list with the "
            "reason it does not apply here."
        )
        return 1, lines
    lines.append(f"No known vulnerabilities beyond the allow-list; packages audited: {counts}.")
    return 0, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pip-audit", required=True, help="the pip-audit executable")
    parser.add_argument("--allowlist", required=True, type=Path)
    parser.add_argument("--service", action="append", choices=SERVICES, help="asked in this order (default: all)")
    parser.add_argument("--timeout", type=int, default=15, help="socket timeout of one request, seconds")
    parser.add_argument("--osv-url", help="OSV's query endpoint, when not the public one")
    parser.add_argument("targets", nargs="+", metavar="NAME=DIR", help="a directory of installed packages")
    args = parser.parse_args(argv)
    targets = dict(t.split("=", 1) for t in args.targets)
    try:
        allowlist = read_allowlist(args.allowlist.read_text())
    except RefusedAllowList as exc:
        print(f"{args.allowlist}: refused: {exc}", file=sys.stderr)
        return 3
    results = audit(args.pip_audit, targets, args.service or list(SERVICES), args.timeout, args.osv_url)
    status, lines = verdict(results, allowlist)
    print("\n".join(lines), file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
