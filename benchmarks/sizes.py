"""What each function downloads on a cold start: its code and its layers, zipped as `sam package` zips them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from builds import FUNCTIONS, Layout, baseline, current
from common import Context, Figure

SECTION = "sizes"


def zipped_kb(folder: Path) -> float:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return len(buffer.getvalue()) / 1024


def parts(layout: Layout) -> dict[str, Path]:
    found = {"dependency layer": layout.root / "DependenciesLayer", "code layer": layout.root / "DlrwatchLayer"}
    found.update({f"{name.lower()} function": layout.function(name) for name in FUNCTIONS})
    return found


def run(ctx: Context) -> list[Figure]:
    now = {name: zipped_kb(path) for name, path in parts(current()).items()}
    before = {name: zipped_kb(path) for name, path in parts(baseline()).items()}
    figures = [
        Figure(
            SECTION,
            f"{name}, zipped",
            kb,
            "KB",
            baseline=before.get(name),
            baseline_name="no bytecode, Swagger UI assets, requests",
            note="with bytecode for Python 3.13" if "layer" in name else "",
        )
        for name, kb in now.items()
    ]
    total = now["dependency layer"] + now["code layer"] + now["callback function"]
    total_before = before["dependency layer"] + before["code layer"] + before["callback function"]
    figures.append(
        Figure(
            SECTION,
            "callback function and its layers, zipped",
            total,
            "KB",
            baseline=total_before,
            baseline_name="no bytecode, Swagger UI assets, requests",
        )
    )
    return figures
