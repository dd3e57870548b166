"""CLUTCH: the SHIFT motion tokenizer + a T5 motion-language model (text <-> motion)."""
