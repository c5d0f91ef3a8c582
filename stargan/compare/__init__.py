"""`stargan compare`: k(k-1)/2 pairwise CycleGANs against one StarGAN under an equal budget (application)."""
