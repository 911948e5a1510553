"""Live mode (``lcm-video live``): a camera, screen, stream, stdin or file in, stylised frames out to recordings,
streams and virtual cameras as they come; the stylise path fed one frame at a time."""
