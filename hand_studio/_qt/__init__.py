"""Qt widgets: they show visuals and write user actions back to the model."""
