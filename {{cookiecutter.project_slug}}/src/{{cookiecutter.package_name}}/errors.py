"""Errors a user can fix: reported as one line and exit status 2, never as a traceback."""


class UsageError(Exception):
    """Base class; the message names the value or file at fault and what would work."""


class ConfigError(UsageError, ValueError):
    """A config value that cannot work."""


class DataError(UsageError, RuntimeError):
    """A dataset that cannot be had or read: offline with no copy, corrupt, wrong layout."""
