"""Questions in plain words → catalog filters, offline (``quire ask``, ``GET /api/v1/ask``)."""

from quire_assets.ask.translate import AskError, Translation, Translator, get_translator, run, translate

__all__ = ["AskError", "Translation", "Translator", "get_translator", "run", "translate"]
