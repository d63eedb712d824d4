"""convtui: manage AI coding-agent conversations from the terminal."""

__version__ = "0.1.0"
