"""The pure library of musicrec: one module per stage, no I/O."""
