"""Training scripts, one per model."""
