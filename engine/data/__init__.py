"""Training data: procedural motion, captions, corpus building and mocap import."""
