"""The `musicrec` commands, one module per group: parse arguments -> runner -> print.

Each command takes the run's `Session` from Typer's context (`session(ctx)`) and never imports
`musicrec_cli.app`, which only builds the group and registers these functions.
"""
