"""Measuring restorations after solving: metrics, fit diagnostics, candidates, domain FID,
convergence curves, latent-space pictures and attribute preservation."""
