"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input or settings, stated in one line with its fix.

    The CLI prints the message alone (no traceback) and exits with status 2. Library callers can catch it
    like any ``ValueError``.
    """
