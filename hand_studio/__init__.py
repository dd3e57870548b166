"""Hand Studio: the PySide6 + VisPy app on top of the engine.

``model`` holds state and never imports Qt; ``_vispy`` draws the model; ``_qt`` holds widgets.
The engine is reached only through ``engine.api``, ``engine.motion.clip`` and
``engine.hands.skeleton``; the engine never imports this package.
"""
__version__ = "0.1.0"
