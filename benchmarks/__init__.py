"""lcm_video's benchmarks and training recipes, run as modules: ``python -m benchmarks.NAME``."""
