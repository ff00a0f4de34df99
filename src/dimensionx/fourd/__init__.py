"""4D scenes from one image: an ST-Director video grid with identity-preserving denoising, then 4D Gaussians."""
