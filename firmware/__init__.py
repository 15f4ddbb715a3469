"""humus firmware: the runtime on the box. Never imports torch."""
__version__ = "0.1.0"
