"""Input types shared by every schema (API bodies, plan files).

PostgreSQL text cannot hold NUL characters, and a NUL that reached the database would surface as a
500; refusing it at the schema turns it into a 422 naming the field, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator


def reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


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
