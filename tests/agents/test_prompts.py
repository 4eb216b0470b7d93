"""Prompts reach the model as written: shell commands and code keep their quotes, ampersands and angle brackets."""

from __future__ import annotations

from apps.agents.prompts import render


def test_a_test_command_with_quotes_and_redirects_is_not_html_escaped():
    text = render("coding_task.md", task={"key": "T1", "title": "Fix <b> & 'quotes'"},
                  tests=[{"description": "a.txt holds 'A'", "command": "grep -qx 'A' a.txt && echo ok > /dev/null"}])

    assert "grep -qx 'A' a.txt && echo ok > /dev/null" in text
    assert "&#x27;" not in text and "&amp;" not in text and "&gt;" not in text
