"""The one error type for mistakes a user can fix (bad data, bad config, bad request)."""


class GenloopError(Exception):
    """Says what is wrong and how to fix it; the CLI prints it without a traceback."""
