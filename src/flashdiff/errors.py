"""The project's user-facing errors: each is printed by the entry points as one line (no traceback) that names the
config key, value or file at fault and how to fix it. ``HYDRA_FULL_ERROR=1`` (or ``--debug``) shows the traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for or supplied (config, files, folders); exit code 2."""


class ConfigError(UserError, ValueError):
    """A config key with a value out of range, or a combination of choices that cannot run."""


class InputError(UserError, FileNotFoundError):
    """A file or folder that is missing or cannot be read (named, with the reason)."""


class RecordError(UserError):
    """A run folder whose records belong to another config, or cannot be resumed as asked."""
