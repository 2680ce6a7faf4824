"""Errors a user can cause: the CLI turns them into a message and an exit code, no traceback."""


class FinriskError(Exception):
    """A problem the user can fix: bad input, a missing prerequisite, a busy port."""

    exit_code = 2
