"""The toy world made in code (no torch): pictures and clips of coloured shapes with captions, what the toy models
are trained on and measured with. Below ``video/`` and ``train/``, which both draw from it."""
