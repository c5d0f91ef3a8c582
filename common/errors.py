"""User-facing errors.

Anything caused by the user's input (a bad config key, a missing folder, a corrupt checkpoint) is raised as
:class:`UserError`. The CLI prints it as one line and exits with status 2, without a traceback; library
callers can catch it like any other exception.
"""


class UserError(Exception):
    """An error in the user's input. ``str(err)`` is a complete one-line message naming the file/key."""

    exit_code = 2
