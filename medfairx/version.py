"""The medfairx version (one place; ``medfairx.__version__`` re-exports it)."""

__version__ = "0.1.0"
