"""`python -m escalator` runs the CLI, for environments without the console script."""

from escalator.cli import main

main()
