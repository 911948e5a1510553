"""Offline batch rendering: job files, units of work, resume, processes."""
