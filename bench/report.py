"""The results table, printed and written to bench/RESULTS.md."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from bench.common import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _value(row: Row) -> str:
    if row.unit == "s":
        return f"{row.value * 1000:.1f} ms" if row.value < 1 else f"{row.value:.2f} s"
    if row.unit == "%":
        return f"{row.value:.0%}"
    return f"{row.value:,.1f} {row.unit}"


def _ratio(row: Row) -> str:
    return f"{row.ratio:.2f}x" if row.ratio is not None else ""


def _verdict(row: Row) -> str:
    return {True: "yes", False: "NO", None: ""}[row.ok]


def lines(rows: list[Row]) -> list[str]:
    """The table in Markdown, one section heading per group of rows."""
    out: list[str] = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out += ["", f"**{section}**", ""]
            out += ["| measurement | value | ratio | target | met | note |", "|---|---|---|---|---|---|"]
        out.append(f"| {row.name} | {_value(row)} | {_ratio(row)} | {row.target} | {_verdict(row)} | {row.note} |")
    return out


def print_table(rows: list[Row]) -> None:
    print("\n".join(lines(rows)).lstrip())


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}; {platform.platform()}; Python {platform.python_version()}"


def write_results(rows: list[Row], command: str) -> None:
    import gradio

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    header = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Software: gradio {gradio.__version__}, commit {commit.stdout.strip() or 'unknown'}",
        f"- Command: `{command}`",
        "",
        "Every ratio compares two things measured in this one run on this machine (medians of repetitions).",
        "",
    ]
    failed = [row for row in rows if row.ok is False]
    summary = "All targets met." if not failed else f"Targets not met: {', '.join(r.name for r in failed)}."
    RESULTS.write_text("\n".join([*header, summary, *lines(rows), ""]), encoding="utf-8")
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    sys.stdout.flush()
