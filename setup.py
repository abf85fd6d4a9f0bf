"""Build hook: a wheel carries the project's top-level ``conf/`` (with ``experiments/`` and ``sweeps/`` inside it,
through its ``experiment`` and ``sweep`` links) and the bundled toy ``models/`` as package data under
``flashdiff/_bundled/``, where ``flashdiff.paths`` finds them when there is no checkout. The checkout keeps its
layout; an editable install reads it in place. Everything else is in setup.cfg."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("conf", "models")


class BuildWithBundle(build_py):
    """``build_py``, then copy the bundled folders (links followed, result records left out) into the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root, target = Path(__file__).resolve().parent, Path(self.build_lib) / "flashdiff" / "_bundled"
        for name in BUNDLED:
            shutil.copytree(root / name, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("results", "__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithBundle})
