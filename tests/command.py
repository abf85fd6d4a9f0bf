"""The project's commands run as a user types them, inside the test process.

``command("num_images=2", ...)`` is ``python -m flashdiff num_images=2 ...``: the same entry function, Hydra parsing
the same arguments, the same exit code and the same stdout/stderr, without the 5-7 s a fresh interpreter spends
importing torch, diffusers and wandb. What only a separate process shows (imports a command avoids, wandb's console
output, several processes at once, an installed wheel) is tested with ``subprocess`` where it is the point.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

# module run with `python -m` -> "module:function" its `__main__` block calls (a Hydra app's entry)
ENTRIES = {"flashdiff": "flashdiff.__main__:entry", "flashdiff.train": "flashdiff.train.__main__:entry",
           "flashdiff.rank": "flashdiff.cli:rank", "flashdiff.severity_study": "flashdiff.cli:severity_study"}
# argparse tools: module -> its `main(argv)`, which `__main__` hands to `flashdiff.console.run`
TOOLS = {"flashdiff.report": "flashdiff.report.__main__:main", "flashdiff.select": "flashdiff.report.select:main",
         "flashdiff.convert": "flashdiff.convert.__main__:main"}
# the environment a command gets unless a test says otherwise: offline, and no wandb run (tracking has its own tests)
ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def command(*args: object, module: str = "flashdiff", cwd: str | Path | None = None,
            env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` in this process from ``cwd``; returns its exit code, stdout and stderr as
    ``subprocess.run`` does. ``check`` raises with the output's tail when the exit code is not 0."""
    from hydra.core.global_hydra import GlobalHydra

    entry = _entry(module)
    argv = [str(a) for a in args]
    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({**ENV, **(env or {})})
    sys.argv = [module, *argv]
    code: int = 0
    try:
        os.chdir(cwd or saved_cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                entry()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if not isinstance(exit_.code, int | None):
                    print(exit_.code, file=sys.stderr)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for handler in root.handlers:  # Hydra's console and run-folder log handlers
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        GlobalHydra.instance().clear()
    proc = subprocess.CompletedProcess([sys.executable, "-m", module, *argv], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _entry(module: str):
    """The function ``python -m <module>`` calls, taking its arguments from ``sys.argv``."""
    if module in TOOLS:
        from flashdiff.console import run

        main = _load(TOOLS[module])
        return lambda: run(main, module)
    return _load(ENTRIES[module])


def _load(path: str):
    module_name, function = path.split(":")
    return getattr(importlib.import_module(module_name), function)
