"""musicrec: the command-line shell around the `stages` library."""

__version__ = "0.1.0"
