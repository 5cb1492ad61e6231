"""What the command line runs: restoring images and folders, benchmarks with their analyses and
report, and the demo."""
