"""Bimanual text-to-motion diffusion (HandX §5.1): representation, denoiser, scheduler,
masked partial denoising, constraints, the sampling pipeline and checkpoints."""
