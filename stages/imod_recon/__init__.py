"""Stage imod-recon."""
