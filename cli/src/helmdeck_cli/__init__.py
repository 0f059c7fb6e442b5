"""helmdeck: Helmdeck's remote CLI (the standard library only, talking only to the API)."""

__version__ = "0.1.0"
