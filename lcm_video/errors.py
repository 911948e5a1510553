"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input or settings, stated in one line with its fix.

    The CLI prints the message alone (no traceback) and exits with status 2. Library callers can catch it
    like any ``ValueError``.
    """


class Note(UserWarning):
    """Something a library call assumed for its caller and says (say, the frame rate of a folder of images): what the
    command line prints as ``lcm-video: note: ...`` the library warns as a ``Note``. A ``UserWarning``, so filters on
    that still apply; its own class lets a caller (or the test suite) single out lcm_video's notes from other
    libraries' warnings."""
