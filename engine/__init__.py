"""Hand Studio engine: hands, motion, models, training and I/O. Never imports the GUI."""
__version__ = "0.1.0"
