"""Unicode normalization and encoding repair applied to every accepted text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

# C0 controls except tab, newline, form feed and carriage return (handled below), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# What UTF-8 mis-decoded as Latin-1 or Windows-1252 must contain: a lead byte (0xC2-0xF4
# -> 'Â'..'ô') followed by a continuation byte (0x80-0xBF -> U+0080-U+00BF, or the
# Windows-1252 characters at 0x80-0x9F), or stray C1 controls. Text without any of these
# has nothing for ftfy's encoding repair to do, and ftfy's own check runs at ~5 MB/s.
_CP1252_HIGH = (
    "\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d"
    "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
)
_MAYBE_MOJIBAKE = re.compile(f"[\xc2-\xf4][\x80-\xbf{_CP1252_HIGH}]|[\x80-\x9f]")


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str
    changes: tuple[str, ...]
    """What was changed, for the record's metadata (e.g. `fixed_encoding`)."""


class Normalizer:
    """BOM, control characters, line endings, lone surrogates, mojibake, NFC/NFKC."""

    def __init__(self, form: Literal["NFC", "NFKC", "none"] = "NFC", fix_encoding: bool = True) -> None:
        self._form = None if form == "none" else form
        self._ftfy_config = None
        if fix_encoding:
            import ftfy

            # Only encoding repair: leave quotes, HTML entities, widths and ligatures as
            # written, since for code they are content.
            self._ftfy_config = ftfy.TextFixerConfig(
                unescape_html=False,
                remove_terminal_escapes=False,
                fix_latin_ligatures=False,
                fix_character_width=False,
                uncurl_quotes=False,
                fix_line_breaks=False,
                remove_control_chars=False,
                normalization=None,
                explain=False,
            )

    def __call__(self, text: str) -> Normalized:
        changes: list[str] = []
        if text.startswith("\ufeff"):
            text = text[1:]
            changes.append("stripped_bom")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if _CONTROL.search(text):
            text = _CONTROL.sub("", text)
            changes.append("removed_control_chars")
        if text.isascii():
            return Normalized(text, tuple(changes))
        if _SURROGATE.search(text):  # unencodable as UTF-8 (e.g. from a JSON "\ud800" escape)
            text = _SURROGATE.sub("\ufffd", text)
            changes.append("replaced_lone_surrogates")
        if self._ftfy_config is not None and _MAYBE_MOJIBAKE.search(text):
            import ftfy

            fixed = ftfy.fix_text(text, self._ftfy_config)
            if fixed != text:
                text = fixed
                changes.append("fixed_encoding")
        if self._form and not unicodedata.is_normalized(self._form, text):
            text = unicodedata.normalize(self._form, text)
            changes.append(f"normalized_{self._form.lower()}")
        return Normalized(text, tuple(changes))
