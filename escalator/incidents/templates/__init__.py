"""Everything escalator says, rendered with Jinja2 one way: incident notices and pages.

Incident notices (this folder): `initial.j2`, `status_update.j2` and `resolution.j2` are
the seed's "Communication Templates" filled in; the others (stakeholder update, reminders,
the multiple-critical page) follow the same shape. SMS and voice get the short form
`sms.j2`, which is cut to fit in two SMS segments.

Escalation pages and shift notices (escalator/notify/templates, rendered by
escalator.notify.message.Pages and escalator.roster.shift_notices): `page`, `bundle`
(several alerts to one person in one message), `ack_hint` (how to respond), `test_page`
and `shift_notice`, each as `<kind>_<method>.j2` where a method needs its own form
(console one line, SMS two segments, voice spoken) and `<kind>.j2` otherwise; `_page.j2`
holds the shared wording. Both sets go through the one `Templates` class below (one
environment setup, one override and fallback rule), each from its own folder.

Any of them can be replaced per delivery method from config
(`incidents.templates.<method>.<kind>` for notices, `channels.templates.<method>.<kind>`
for pages), so a team can post a terser chat message than its email without forking the
code.
"""
from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError

from escalator.config import IncidentNotice, PageTemplate, TemplateSource

log = logging.getLogger("escalator.templates")

TEMPLATE_DIR = Path(__file__).resolve().parent
SHORT_METHODS = frozenset({"sms", "voice"})
KINDS = get_args(IncidentNotice)
PAGE_KINDS = get_args(PageTemplate)

# GSM 03.38: the basic set (one septet each) and the extension table (escape + septet).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
# Two concatenated segments: 2 x 153 septets (GSM-7) or 2 x 67 UTF-16 units (UCS-2).
TWO_SEGMENTS = {"GSM-7": 306, "UCS-2": 134}


def sms_encoding(text: str) -> str:
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "UCS-2"


def sms_units(text: str) -> int:
    """Septets (GSM-7, extension characters count twice) or UTF-16 code units (UCS-2)."""
    if sms_encoding(text) == "GSM-7":
        return len(text) + sum(1 for c in text if c in GSM7_EXTENSION)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many SMS segments a carrier bills for `text`."""
    units = sms_units(text)
    single, multi = (160, 153) if sms_encoding(text) == "GSM-7" else (70, 67)
    return 1 if units <= single else math.ceil(units / multi)


# Typographic characters with a GSM-7 look-alike (as carriers' "smart encoding" does).
_GSM7_LOOKALIKES = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'",
        "“": '"', "”": '"', "„": '"', "″": '"', "«": '"', "»": '"',
        "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-",
        "…": "...", "•": "*", "·": ".", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
        "\t": " ",
    }
)  # fmt: skip


def to_gsm7(text: str) -> str:
    """`text` in GSM-7 only: typographic punctuation becomes its ASCII look-alike, accents
    outside the GSM set are dropped (ő and ç keep their letter), anything else becomes
    `?`. A page's SMS is sent this way: one character outside GSM-7 would switch the whole
    message to UCS-2 and halve its room (134 units in two segments), and the alert name,
    runbook link and reply hint must fit."""
    out = []
    for char in text.translate(_GSM7_LOOKALIKES):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
            continue
        parts = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in parts if not unicodedata.combining(c))
        out.append(base if base and all(c in GSM7_BASIC for c in base) else "?")
    return "".join(out)


def fit_sms(text: str, reserve: str = "") -> str:
    """`text` cut (with "...") so that `text` + newline + `reserve` fits in two segments.

    `reserve` is what the SMS channel appends (the ack hint); it is never cut, because an
    SMS that cannot be acknowledged is worse than one that lost its last words.
    """
    text = text.strip()
    tail = f"\n{reserve}" if reserve else ""
    if sms_segments(text + tail) <= 2:
        return text
    limit = TWO_SEGMENTS[sms_encoding(text + tail)] - sms_units(tail + "...")
    cut = text
    while cut and sms_units(cut) > limit:
        # Drop whole characters (never half a surrogate pair) until it fits.
        cut = cut[: max(len(cut) - max((sms_units(cut) - limit) // 2, 1), 0)]
    return cut.rstrip() + "..."


def _load_override(source: TemplateSource) -> str:
    if source.text is not None:
        return source.text
    assert source.file is not None
    return Path(source.file).read_text()


class Templates:
    """Looks up and renders the template for (kind, delivery method) from `directory`
    (the incident notices here by default; escalator.notify.templates for pages)."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, TemplateSource]] | None = None,
        directory: Path = TEMPLATE_DIR,
    ) -> None:
        self.directory = directory
        self.env = Environment(
            loader=FileSystemLoader(str(directory)),
            undefined=StrictUndefined,  # a typo in a template fails loudly, not silently
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,  # plain text for chat, email and SMS, never HTML
        )
        self._overrides: dict[tuple[str, str], Template] = {}
        for method, kinds in (overrides or {}).items():
            for kind, source in kinds.items():
                try:
                    self._overrides[(method, kind)] = self.env.from_string(_load_override(source))
                except (OSError, TemplateError) as exc:
                    # A broken override must not stop the engine: the default is used.
                    where = self._where(kind)
                    log.error("%s.%s.%s unusable (%s)", where, method, kind, exc)

    def default_name(self, kind: str, method: str) -> str:
        """The shipped template for (kind, method)."""
        if kind in KINDS:
            return "sms.j2" if method in SHORT_METHODS else f"{kind}.j2"
        if kind in PAGE_KINDS:
            specific = f"{kind}_{method}.j2"
            return specific if (self.directory / specific).is_file() else f"{kind}.j2"
        raise ValueError(f"unknown notification kind {kind!r}")

    def template(self, kind: str, method: str) -> Template:
        name = self.default_name(kind, method)
        return self._overrides.get((method, kind)) or self.env.get_template(name)

    def _where(self, kind: str) -> str:
        return "channels.templates" if kind in PAGE_KINDS else "incidents.templates"

    def render(self, kind: str, method: str, context: Mapping[str, Any], reserve: str = "") -> str:
        """The text for (kind, method). Incident notices by SMS or voice are cut to two SMS
        segments with `reserve` (the hint appended after them); pages are cut by their
        renderer, which knows what it appends."""
        try:
            text = self.template(kind, method).render(kind=kind, method=method, **context)
        except TemplateError as exc:
            if (method, kind) not in self._overrides:
                raise  # a bug in a shipped template: tests must see it
            log.error(
                "%s.%s.%s failed (%s); using the default", self._where(kind), method, kind, exc
            )
            name = self.default_name(kind, method)
            text = self.env.get_template(name).render(kind=kind, method=method, **context)
        text = text.strip()
        # Collapse the blank lines optional sections leave behind.
        while "\n\n\n" in text:
            text = text.replace("\n\n\n", "\n\n")
        if method == "voice":
            text = " ".join(text.split())  # spoken: line breaks mean nothing
        if method in SHORT_METHODS and kind in KINDS:
            text = fit_sms(text, reserve)
        return text
