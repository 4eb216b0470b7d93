"""Input types shared by every schema (API bodies, plan files).

PostgreSQL text cannot hold NUL characters, and no database stores a lone UTF-16 surrogate (JSON's "\ud800"
decodes to one); either would surface as a 500. Refusing them at the edge turns them into a 422 naming the
field, on SQLite and PostgreSQL alike: `Text` in a schema, and `text_refusal` over a whole JSON body (the API's
parser applies it to every body, so no schema can forget).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str:
    """Why this text cannot be stored ("" when it can)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if _SURROGATE.search(value):
        return "must not contain a lone surrogate (text that is not valid Unicode)"
    return ""


def reject_nul(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def text_refusal(data: object, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    """The first place in a JSON value (keys included) holding text that cannot be stored, and why."""
    if isinstance(data, str):
        problem = text_problem(data)
        return (path, problem) if problem else None
    if isinstance(data, dict):
        for key, value in data.items():
            found = text_refusal(key, path) if isinstance(key, str) else None
            found = found or text_refusal(value, (*path, str(key)))
            if found:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            if found := text_refusal(value, (*path, index)):
                return found
    return None


Text = Annotated[str, AfterValidator(reject_nul)]


_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only ('¹'.isdigit() is True) and within bigint range


def as_id(ref: str) -> int | None:
    """`ref` as a database id if it can be one, else None (so odd input never reaches the database)."""
    return int(ref) if _ID.fullmatch(ref) else None


AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
AGE = re.compile(r"(\d{1,6})([mhdw])")


def age_or_none(text: str) -> timedelta | None:
    """`30m`, `12h`, `7d` or `2w` as a timedelta; None when the text is not such an age."""
    match = AGE.fullmatch(text.strip())
    if not match:
        return None
    return timedelta(**{AGE_UNITS[match[2]]: int(match[1])})
