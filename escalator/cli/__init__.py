"""The `escalator` command: `main` (click group), `backend` (database or API), `commands/`."""
