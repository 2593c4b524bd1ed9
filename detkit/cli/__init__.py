"""The command line: one module per tool (``detkit.cli.train`` ...), ``detkit.cli.main`` dispatches ``detkit CMD``."""
