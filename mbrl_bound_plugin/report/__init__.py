"""Reports on finished runs: read them, compute the statistics, write markdown and plots."""
