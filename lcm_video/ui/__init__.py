"""The web UI (``lcm-video ui``): a Gradio app over the library's calls. Gradio is an optional dependency
(``pip install "lcm-video[ui]"``); importing this package without it gives a one-line error saying so."""

from __future__ import annotations

from ..errors import UserError


def _need_gradio() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError('the web UI needs Gradio: pip install "lcm-video[ui]"') from None


def build_app(*args, **kwargs):
    """See :func:`lcm_video.ui.app.build_app`."""
    _need_gradio()
    from .app import build_app

    return build_app(*args, **kwargs)


def launch(*args, **kwargs) -> None:
    """See :func:`lcm_video.ui.app.launch`."""
    _need_gradio()
    from .app import launch

    launch(*args, **kwargs)
