"""Verbs of the `yokeflow` command owned by core: API tokens."""

from __future__ import annotations

from typing import Any

from apps.core.tokens import token_create


def register(subparsers: Any) -> None:
    token = subparsers.add_parser("token", help="manage API tokens")
    token_verbs = token.add_subparsers(dest="token_verb", required=True, metavar="ACTION")
    create = token_verbs.add_parser("create", help="create a bearer token for a user (shown once)")
    create.add_argument("username")
    create.add_argument("--name", default="", help="a label to recognise the token by")
    create.set_defaults(handler=_token_create)


def _token_create(options: dict[str, Any], out: Any) -> None:
    token, raw = token_create(username=options["username"], name=options["name"])
    out.write(raw)
    out.write(f"(token {token.prefix}… for {token.user.get_username()}; it is shown only this once)")
