"""The web console under /ui/: server-rendered pages for the on-call (see routes.py)."""

from escalator.web.ui.routes import install_console

__all__ = ["install_console"]
