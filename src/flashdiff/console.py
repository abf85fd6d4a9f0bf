"""The entry points' edge: a user error (``flashdiff.errors.UserError``, a bad argument, a config Hydra could not
instantiate) is one line on stderr and exit code 2, in the Hydra apps (``user_errors``) and the argparse tools
(``python -m flashdiff.select``, ``.report``, ``.convert``: ``run``); ``HYDRA_FULL_ERROR=1`` shows the traceback."""

from __future__ import annotations

import argparse
import functools
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


def user_errors(entry: Callable[..., Any]) -> Callable[..., Any]:
    """Print the project's own errors (``flashdiff.errors.UserError``, a config Hydra could not instantiate) as one
    line on stderr and exit 2; ``HYDRA_FULL_ERROR=1`` re-raises them with the traceback. Other exceptions pass."""

    @functools.wraps(entry)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from hydra.errors import InstantiationException

        from flashdiff.errors import UserError

        try:
            return entry(*args, **kwargs)
        except (UserError, InstantiationException) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"flashdiff: error: {_one_line(err)}", file=sys.stderr)
            sys.exit(2)

    return wrapped


def _one_line(err: BaseException) -> str:
    """An error's message; an instantiation error's underlying cause, prefixed with what was being built."""
    from hydra.errors import InstantiationException

    if isinstance(err, InstantiationException) and err.__cause__ is not None:
        target = str(err).split("'")[1] if "'" in str(err) else "a config object"
        return f"building {target}: {err.__cause__}"
    return " ".join(str(err).split("\n"))
