"""Errors a user can fix: the CLI prints one line and exits 2. Any other exception is a bug: traceback kept."""


class SaroError(Exception):
    """A user-facing error: bad input, bad config, unreachable endpoint."""


class ConfigError(SaroError):
    """A config file or override is invalid."""


class DataError(SaroError):
    """An input data file is malformed (the message names file, line and field)."""


class TeacherError(SaroError):
    """A teacher endpoint failed for good (after retries)."""
