"""The console's words exist in Japanese and English, and every key a template uses is defined."""

from __future__ import annotations

import re
from pathlib import Path

from bus.console.i18n import MESSAGES, t

TEMPLATES = Path(__file__).resolve().parents[2] / "bus" / "console" / "templates"


def test_every_message_has_a_japanese_and_an_english_text_with_the_same_placeholders() -> None:
    for key, (ja, en) in MESSAGES.items():
        assert ja and en, key
        assert set(re.findall(r"{(\w+)}", ja)) == set(re.findall(r"{(\w+)}", en)), key


def test_every_key_the_templates_and_pages_use_is_defined() -> None:
    used = set()
    for path in [*TEMPLATES.glob("*.html"), *(TEMPLATES.parent.glob("*.py"))]:
        used |= set(re.findall(r"""t\(\s*["']([a-z_]+\.[a-z_]+)["']""", path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"""["']((?:error|reason|login|search|dead)\.[a-z_]+)["']""",
                               path.read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith(("_", ".html"))}  # "dead.done_" ~ what; template names
    assert len(used) > 40
    assert sorted(used - set(MESSAGES)) == []


def test_japanese_comes_first_and_english_on_request() -> None:
    assert t("ja", "nav.overview") == "概要" and t("en", "nav.overview") == "Overview"
    assert t("ja", "reason.dead", n=3) == "デッドレター 3 件" and t("en", "reason.dead", n=3) == "3 dead letters"
