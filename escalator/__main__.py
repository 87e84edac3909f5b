"""`python -m escalator` runs the CLI, for environments without the console script."""

from escalator.cli.main import run

run()
