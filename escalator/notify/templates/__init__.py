"""The shipped templates of escalation pages and shift notices (`page`, `bundle`,
`ack_hint`, `test_page`, `shift_notice`, per method where a method needs its own form).

They render through the same `Templates` class as incident notices
(escalator.incidents.templates: one Jinja environment setup, one override rule), from this
folder, with the overrides of `channels.templates.<method>.<kind>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from escalator.config import TemplateSource
from escalator.incidents.templates import Templates

PAGE_TEMPLATE_DIR = Path(__file__).resolve().parent


def page_templates(
    overrides: Mapping[str, Mapping[Any, TemplateSource]] | None = None,
) -> Templates:
    """Page and shift-notice templates with `channels.templates` overrides applied."""
    return Templates(overrides, PAGE_TEMPLATE_DIR)
