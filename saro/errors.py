"""Errors a user can fix. The CLI prints them as one line and exits 2; anything else is a bug and keeps its traceback."""


class SaroError(Exception):
    """A user-facing error: bad input, bad config, unreachable endpoint."""


class ConfigError(SaroError):
    """A config file or override is invalid."""


class DataError(SaroError):
    """An input data file is malformed (the message names file, line and field)."""


class TeacherError(SaroError):
    """A teacher endpoint failed for good (after retries)."""
