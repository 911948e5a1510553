"""Model presets, tiny random-weight builders, device choice, loading and the loaded-models container."""
