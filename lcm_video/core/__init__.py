"""The LCM core: schedule constants, the sampler loop, keyed noise, the UNet adapter and the latent codec."""
