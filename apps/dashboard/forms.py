"""The forms behind every page POST: each field checked and typed here, so views hand services values (a Decimal,
a bool, parsed JSON), never strings from `request.POST`.

A refused form becomes the same `ValidationError` (422, with `details.fields`) a service raises, so a view has one
refusal path; a service's own field refusal is put back onto the form (`DashboardForm.take`), so the template shows
every error beside its field, with what the person typed still in it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from apps.core.errors import ValidationError, YokeFlowError

SUMMARY_MAX = 500  # ExpertiseUpdate.summary's length
NOTES_MAX = 20_000
AMOUNT_HINT = "give the dollars to add, between 0.01 and 100000"
SIDES = {"ours": "ours: keep the default branch's side of each conflict",
         "theirs": "theirs: keep the worktree's side of each conflict",
         "manual": "manual: I fix it in the worktree myself"}


class DashboardForm(forms.Form):
    """A form that refuses with the API's error shape and takes a service's field errors back."""

    def checked(self) -> dict[str, Any]:
        """The cleaned values, or a ValidationError naming each refused field ("field: message; …")."""
        if self.is_valid():
            return self.cleaned_data
        fields = {name: [str(message) for message in errors] for name, errors in self.errors.items()}
        summary = "; ".join(f"{name}: {messages[0]}" if name != "__all__" else messages[0]
                            for name, messages in fields.items())
        raise ValidationError(summary, code="invalid_fields", details={"fields": fields})

    def take(self, exc: YokeFlowError) -> None:
        """Show a service's refusal on the form: beside the fields it names, else above the form."""
        named = (exc.details or {}).get("fields") or {}
        shown = [name for name in named if name in self.fields and name not in self.errors]
        for name in shown:
            self.add_error(name, [str(message) for message in named[name]] or [exc.message])
        if not shown and not self.errors:
            self.add_error(None, exc.message)


class BackForm(DashboardForm):
    """A form that may say where to go afterwards (`next`): kept only when it points into this site."""

    next = forms.CharField(required=False, max_length=2000)

    def __init__(self, data: Any = None, *, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.request = request

    def clean_next(self) -> str:
        back = self.cleaned_data["next"]
        safe = url_has_allowed_host_and_scheme(back, allowed_hosts={self.request.get_host()},
                                               require_https=self.request.is_secure())
        return back if safe else ""

    def back(self) -> str:
        """The safe `next`, even when another field was refused (a refusal still goes back where it came from)."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        return self.cleaned_data.get("next", "")


# --- interventions ---------------------------------------------------------------------------------------------

class ResumeForm(DashboardForm):
    resolved_by = forms.CharField(max_length=150, error_messages={"required": "say who resolves the pause"})
    notes = forms.CharField(required=False, max_length=NOTES_MAX)


class BudgetApproveForm(BackForm):
    """A text field, not a number input, in the page: the browser would drop "abc" silently, the form says why."""

    amount = forms.DecimalField(min_value=Decimal("0.01"), max_value=Decimal("100000"), max_digits=8,
                                decimal_places=2, error_messages={
                                    "required": AMOUNT_HINT, "invalid": AMOUNT_HINT, "min_value": AMOUNT_HINT,
                                    "max_value": AMOUNT_HINT, "max_digits": AMOUNT_HINT,
                                    "max_decimal_places": "whole cents at most (two decimals)"})
    notes = forms.CharField(required=False, max_length=NOTES_MAX)
    pause_id = forms.IntegerField(required=False, min_value=1)


# --- sessions --------------------------------------------------------------------------------------------------

class SessionPauseForm(BackForm):
    reason = forms.CharField(required=False, max_length=200)


class SessionKillForm(BackForm):
    pass


# --- worktrees -------------------------------------------------------------------------------------------------

class WorktreeMergeForm(DashboardForm):
    pass


class WorktreeResolveForm(DashboardForm):
    side = forms.ChoiceField(choices=list(SIDES.items()), error_messages={
        "required": f"choose {', '.join(SIDES)}", "invalid_choice": f"choose {', '.join(SIDES)}"})


class WorktreeCleanupForm(DashboardForm):
    force = forms.BooleanField(required=False)


WORKTREE_FORMS: dict[str, type[DashboardForm]] = {
    "merge": WorktreeMergeForm, "resolve": WorktreeResolveForm, "cleanup": WorktreeCleanupForm}


# --- expertise -------------------------------------------------------------------------------------------------

class ExpertiseActionForm(DashboardForm):
    """Which of the domain page's buttons was pressed; the hand edit is the default."""

    ACTIONS = ("edit", "validate", "improve")
    action = forms.ChoiceField(required=False, choices=[(name, name) for name in ACTIONS], error_messages={
        "invalid_choice": f"%(value).40s is unknown; expected {', '.join(ACTIONS)}"})

    def clean_action(self) -> str:
        return self.cleaned_data["action"] or "edit"


class ExpertiseEditForm(DashboardForm):
    """The content as JSON (parsed here: a syntax error names its line and column) and a one-line summary."""

    action = forms.CharField(required=False)
    content = forms.CharField(strip=False, error_messages={"required": "give the content as JSON"})
    summary = forms.CharField(required=False, max_length=SUMMARY_MAX)

    def clean_content(self) -> Any:
        text = self.cleaned_data["content"]
        try:
            content = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        except RecursionError:
            raise forms.ValidationError("not valid JSON: nested too deeply") from None
        if "\\u0000" in json.dumps(content):  # PostgreSQL stores no NUL in JSON: refused here, not by the database
            raise forms.ValidationError("contains a NUL character")
        return content

    def take(self, exc: YokeFlowError) -> None:
        named = (exc.details or {}).get("fields") or {}
        if named and not set(named) & set(self.fields) and not self.errors:
            self.add_error("content", exc.message)  # the service refused the parsed content's shape
        else:
            super().take(exc)

    def clean_summary(self) -> str:
        return " ".join(self.cleaned_data["summary"].split()) or "edited by hand"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
