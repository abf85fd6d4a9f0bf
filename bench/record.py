"""Appending a Markdown record to bench/results: the header every record starts with (date, commit, machine,
threads, torch, what was run) and the command that made it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def append_record(out: str | Path, threads: int, details: str, lines: list[str]) -> None:
    """Append a section to ``out``: the header (``details`` after the machine) and a table's ``lines``; print it."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    head = (f"\n## {time.strftime('%Y-%m-%d %H:%M')} · commit {commit.stdout.strip()} · {platform.machine()}, "
            f"{os.cpu_count()} CPUs, {threads} torch threads, torch {torch.__version__} · {details}\n\n"
            f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n")
    with open(out, "a") as f:
        f.write(head + "\n".join(lines) + "\n")
    print("\n".join(lines))
