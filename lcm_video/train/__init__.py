"""Training: latent consistency distillation of a teacher into a few-step LCM (LCM-LoRA or full)."""
