"""`yokeflow models`: the provider, tier models, deprecations and prices; `yokeflow sandbox check|run`: the jail."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.agents.egress import NETWORK_MODES
from apps.agents.jail import jail_status, require_jail, unsafe_mode
from apps.agents.jail_probes import probes_run
from apps.agents.models import ModelPrice
from apps.agents.providers import deprecated_models, provider_notice
from apps.agents.sandbox import run_command, scrubbed_env
from apps.core.errors import SandboxError, ValidationError


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="show the model provider, tier models, deprecations and prices")
    models.set_defaults(handler=_models)
    sandbox = subparsers.add_parser("sandbox", help="the command jail: self-test, or run a command in it")
    verbs = sandbox.add_subparsers(dest="sandbox_verb", required=True, metavar="VERB")
    check = verbs.add_parser("check", help="run escape probes in the jail; non-zero exit on any escape")
    check.set_defaults(handler=_sandbox_check)
    run = verbs.add_parser("run", help="run COMMAND in DIR exactly as an agent's run_command would")
    run.add_argument("directory", metavar="DIR")
    run.add_argument("--network", choices=NETWORK_MODES, default="none")
    run.add_argument("--timeout", type=float, default=None, help="seconds (default: COMMAND_TIMEOUT)")
    run.add_argument("--home", default=None, help="the command's HOME (default: a fresh temporary directory)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    run.set_defaults(handler=_sandbox_run)


def _sandbox_check(options: dict[str, Any], out: Any) -> None:
    status = jail_status(refresh=True)
    out.write(f"jail: {status.summary}")
    if unsafe_mode():
        raise SandboxError("SANDBOX=policy: there is no jail to check, agent and member commands run unconfined",
                           code="jail_unsafe_mode")
    require_jail()
    probes = probes_run()
    widths = [max(len(p.name) for p in probes), max(len(p.expected) for p in probes)]
    out.write(f"{'probe':<{widths[0]}}  {'expected':<{widths[1]}}  observed")
    for probe in probes:
        out.write(f"{probe.name:<{widths[0]}}  {probe.expected:<{widths[1]}}  {probe.observed}")
    escaped = [p.name for p in probes if p.escaped]
    if escaped:
        raise SandboxError(f"{len(escaped)} escape(s): {'; '.join(escaped)}", code="jail_escape")
    out.write(f"no escape in {len(probes)} probes")


def _sandbox_run(options: dict[str, Any], out: Any) -> None:
    words = [w for w in options["command"] if w != "--"] if options["command"][:1] == ["--"] else options["command"]
    if not words:
        raise ValidationError("give the command after --, e.g. yokeflow sandbox run . -- ls -la", code="no_command")
    directory = Path(options["directory"]).resolve()
    if not directory.is_dir():
        raise ValidationError(f"{directory} is not a directory", code="not_a_directory")
    command = words[0] if len(words) == 1 else shlex.join(words)
    with tempfile.TemporaryDirectory(prefix="yokeflow-sandbox-home-") as scratch:
        home = options["home"] or scratch
        result = run_command(command, cwd=directory, timeout=float(options["timeout"] or settings.COMMAND_TIMEOUT),
                             env=scrubbed_env(home=home), network=options["network"])
    sys.stdout.write(result.output)
    sys.stdout.flush()
    if not result.ok:
        raise SandboxError(result.as_text().splitlines()[0], code="command_failed")


def _models(options: dict[str, Any], out: Any) -> None:
    out.write(provider_notice())
    deprecated = deprecated_models()
    for tier, model in settings.MODEL_TIERS.items():
        default = " (default)" if tier == settings.DEFAULT_MODEL_TIER else ""
        warning = f"  WARNING: deprecated by Anthropic, retires {deprecated[model]}" if model in deprecated else ""
        out.write(f"  {tier:<7} {model}{default}{warning}")
    out.write("prices per million tokens (in / out / cache write 5m / 1h / cache read):")
    for price in ModelPrice.objects.order_by("model", "effective_from"):
        long = (f"; prompts over {price.long_prompt_threshold:,} tokens: ${price.long_input_per_mtok} / "
                f"${price.long_output_per_mtok}" if price.long_prompt_threshold else "")
        out.write(f"  {price.model:<20} from {price.effective_from}  ${price.input_per_mtok} / "
                  f"${price.output_per_mtok} / ${price.cache_write_5m_per_mtok} / ${price.cache_write_1h_per_mtok}"
                  f" / ${price.cache_read_per_mtok}{long}{'  (legacy)' if price.legacy else ''}")
