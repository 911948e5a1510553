"""Renders: the window renderer shared by stylise and generate, the two pipelines, and progress events."""
