"""initlab: a command-line laboratory for weight-initialization × activation-function experiments."""

__version__ = "0.1.0"
