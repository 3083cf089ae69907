"""Human-readable summaries and reports of run directories."""
