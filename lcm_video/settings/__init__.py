"""Every render setting, declared once, and the one path from defaults, YAML files, keyword arguments and flags to a
validated config. No torch.

- ``parts``: the config parts; a part's field is the option's declaration (name, kind, default per command, limits,
  help); ``SETTINGS`` indexes them.
- ``configs``: ``RenderConfig`` (= the parts) and the commands' ``StylizeConfig`` / ``GenerateConfig``.
- ``keyframes``: ``--prompt-at`` / ``--strength-at`` parsed into ``Keyframes``, the one interpolator between keys.
- ``resolve``: defaults ← config object or YAML ← keywords/flags, then ``validate`` (every rule between options).
- ``flags``: the command flags that are not render settings (paths, ``--config``, batch and eval options).
- ``distill``: ``lcm-video distill``'s settings and the LoRA targets.
"""
