"""The shared evaluator (frozen text-motion embedding) and the papers' metrics."""
