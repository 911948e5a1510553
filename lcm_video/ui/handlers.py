"""What every handler of the page shares: the browser session it serves, and a UserError as the page's one line."""

from __future__ import annotations

import sys
import traceback

import gradio as gr

from ..errors import UserError


class user_errors:  # noqa: N801 - used as a statement: ``with user_errors():``
    """A UserError becomes the page's one-line error (no traceback, on the page or in the log); anything else is a
    bug: its traceback goes to the server's stderr and the page gets its one line."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (gr.Error, GeneratorExit)):
            return False
        if isinstance(exc, UserError):
            raise gr.Error(str(exc), print_exception=False) from None
        if isinstance(exc, Exception):
            traceback.print_exception(kind, exc, tb, file=sys.stderr)
            raise gr.Error(f"internal error ({type(exc).__name__}: {exc}); the server's log has the details") from None
        return False


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "api"
