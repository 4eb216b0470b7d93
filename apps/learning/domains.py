"""Which domain a task belongs to: weighted keywords in its text plus file-path signals, else general.

The domain picks the expertise file a session reads and learns into, and is the "task type" model choice and
cost reports group by. A domain the plan set explicitly wins over the scores.
"""

from __future__ import annotations

import re

from apps.projects.models import Domain, Task

PATH_WEIGHT = 2  # a file path names the domain more surely than a word does

DOMAIN_KEYWORDS: dict[str, dict[str, int]] = {
    "database": {"database": 2, "sql": 2, "migration": 2, "schema": 2, "table": 1, "index": 1, "query": 1,
                 "postgres": 2, "postgresql": 2, "sqlite": 2, "orm": 2, "model": 1, "transaction": 2, "db": 2,
                 "column": 1, "foreign key": 2, "persist": 1, "persistence": 1},
    "api": {"api": 2, "endpoint": 2, "rest": 2, "http": 1, "route": 2, "request": 1, "response": 1, "json": 1,
            "status code": 2, "crud": 1, "webhook": 2, "graphql": 2},
    "frontend": {"html": 2, "css": 2, "template": 2, "page": 1, "ui": 2, "button": 2, "form": 1, "javascript": 2,
                 "htmx": 2, "react": 2, "layout": 1, "style": 1, "component": 1},
    "testing": {"test": 1, "testing": 1, "pytest": 2, "fixture": 2, "coverage": 2, "assert": 1, "mock": 2,
                "flaky": 2},
    "security": {"security": 2, "auth": 2, "authentication": 2, "authorization": 2, "login": 2, "log in": 1,
                 "password": 2, "token": 1, "permission": 2, "encrypt": 2, "encryption": 2, "csrf": 2,
                 "secret": 2, "xss": 2, "injection": 1},
    "deployment": {"docker": 2, "dockerfile": 2, "deploy": 2, "deployment": 2, "ci": 2, "pipeline": 1,
                   "kubernetes": 2, "nginx": 2, "env": 1, "release": 1, "makefile": 1, "procfile": 2, "helm": 2,
                   "container": 1},
}
DOMAIN_PATHS: dict[str, tuple[re.Pattern, ...]] = {
    domain: tuple(re.compile(p, re.IGNORECASE) for p in patterns) for domain, patterns in {
        "database": (r"(^|/)models?\.py$", r"(^|/)migrations?/", r"\.sql$", r"(^|/)schema(\.\w+)?$", r"(^|/)db/",
                     r"\.sqlite3?$"),
        "api": (r"(^|/)api/", r"routes?(/|\.\w+$)", r"(^|/)views\.py$", r"endpoints?", r"(^|/)schemas\.py$",
                r"(^|/)urls\.py$", r"(^|/)serializers\.py$"),
        "frontend": (r"(^|/)templates/", r"\.html?$", r"\.(css|scss|sass|less)$", r"\.(js|jsx|ts|tsx|vue|svelte)$",
                     r"(^|/)static/", r"(^|/)components/"),
        "testing": (r"(^|/)tests?/", r"(^|/)test_[^/]*\.py$", r"_test\.(py|go)$", r"(^|/)conftest\.py$",
                    r"(^|/)pytest\.ini$", r"\.(spec|test)\.(js|jsx|ts|tsx)$"),
        "security": (r"auth", r"crypto", r"permission", r"security"),
        "deployment": (r"(^|/)Dockerfile", r"docker-compose", r"(^|/)\.github/workflows/", r"(^|/)Makefile$",
                       r"deploy", r"(^|/)Procfile$", r"(^|/)\.ci/", r"\.gitlab-ci\.yml$", r"(^|/)\.env"),
    }.items()
}
# "table" also finds "tables", "index" "indexes": one pattern per keyword, plural allowed, words whole.
_KEYWORDS = {domain: [(re.compile(r"\b" + r"\s+".join(map(re.escape, k.split())) + r"(?:s|es)?\b", re.I), w)
                      for k, w in words.items()] for domain, words in DOMAIN_KEYWORDS.items()}
_FILE_EXTENSION = re.compile(r"(^|\w)\.[A-Za-z][A-Za-z0-9]{0,5}$")
_ABBREVIATION = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]?$")  # "e.g", "i.e" are not files


def _file_token(raw: str) -> str | None:
    token = raw.strip("\"'`()[]{}<>,;:!?").rstrip(".")
    if token and not _ABBREVIATION.match(token) and ("/" in token or _FILE_EXTENSION.search(token)):
        return token
    return None


def path_domains(path: str) -> set[str]:
    return {domain for domain, patterns in DOMAIN_PATHS.items() if any(p.search(path) for p in patterns)}


def domain_scores(text: str) -> dict[str, int]:
    """Keyword hits (weighted) plus PATH_WEIGHT per file-like token a domain's path signals match. Paths are taken
    out before counting words, so `templates/index.html` is a frontend path, not the database word "index"."""
    raw = text.split()
    paths = [t for t in map(_file_token, raw) if t]
    words = " ".join(r for r in raw if not _file_token(r))
    scores = {domain: sum(w * len(p.findall(words)) for p, w in patterns) for domain, patterns in _KEYWORDS.items()}
    for path in paths:
        for domain in path_domains(path):
            scores[domain] += PATH_WEIGHT
    return scores


def classify_domain(task: Task) -> str:
    if task.domain and task.domain != Domain.GENERAL:
        return task.domain  # the plan said so
    tests = list(task.tests.all()) if task.pk else []
    scores = domain_scores("\n".join([task.title, task.description, *(t.description for t in tests)]))
    # Every acceptance command runs a test runner, so it says nothing for "testing"; its paths still count elsewhere.
    for domain, score in domain_scores("\n".join(t.command for t in tests)).items():
        scores[domain] += 0 if domain == Domain.TESTING else score
    (best, top), (_, runner_up) = sorted(scores.items(), key=lambda kv: -kv[1])[:2]
    return best if top >= 2 and top > runner_up else Domain.GENERAL
