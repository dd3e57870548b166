"""VisPy visuals that draw the model; each listens to model events and disconnects in ``close()``."""
