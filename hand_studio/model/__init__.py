"""The app's state without Qt: documents, events and pose presets."""
from hand_studio.model.document import Document
from hand_studio.model.events import Event, EventEmitter, EmitterGroup

__all__ = ["Document", "Event", "EventEmitter", "EmitterGroup"]
