"""`python -m musicrec_cli` runs the CLI."""

from musicrec_cli.app import app

app()
