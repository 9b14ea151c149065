"""initlab's version, in a module of its own: layers below the API import it without importing ``init_lab.api``."""

__version__ = "0.1.0"
