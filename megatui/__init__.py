"""megatui: the terminal control room for a Megalopolis platform."""

__version__ = "0.1.0"
