"""The single version number of the nasseg distribution (nasseg.__version__ re-exports it)."""

__version__ = "0.1.0"
