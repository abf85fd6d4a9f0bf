"""The argparse tools' edge (``python -m flashdiff.select``, ``.report``, ``.convert``): a user error
(``flashdiff.errors.UserError``, a bad argument included) is one line on stderr and exit code 2, as in the Hydra
entry points; ``HYDRA_FULL_ERROR=1`` shows the traceback instead."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from flashdiff.errors import ConfigError, UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are ``ConfigError``s naming the argument (one line, not usage + error)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def run(main: Callable[[list[str]], Any], prog: str, argv: list[str] | None = None) -> NoReturn:
    """Call ``main(argv)`` (default: the command line) and exit with its return code; a ``UserError`` exits 2 with
    ``<prog>: error: <message>`` on one line."""
    try:
        code = main(sys.argv[1:] if argv is None else argv)
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
