"""The command guard-rail: regular expressions over a command's text that catch what a cooperative agent reaches
for by mistake (sudo, `rm -rf /`, `curl … | sh`, writing outside the worktree, pushing) and say why, so the agent
can pick another way. Quoting, variables and `python -c` all get past them: the boundary is the jail
(`apps/agents/jail.py`), which `tests/agents/test_jail.py` attacks with this policy out of the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.core.errors import SandboxError

__all__ = ["POLICY", "CommandRefused", "PolicyRule", "check_command"]


class CommandRefused(SandboxError):
    code = "command_refused"


@dataclass(frozen=True)
class PolicyRule:
    name: str
    pattern: re.Pattern[str]
    reason: str


# Building blocks for the patterns. They approximate shell syntax: good enough to recognise what an agent
# writes in the open, deliberately not a parser (see the module docstring).

# Where a command word can begin: the start of a line, after a separator or opening bracket, inside a
# command substitution, after a keyword, or at the start of the quoted script given to `sh -c` / `eval`.
_START = r"""(?:^|[;&|({`!\n]|\$\(|\b(?:if|then|do|else|elif|while|until)\s|-c\s+["']|\beval\s+["']?)\s*"""
# Words that run the command after them: `FOO=1 env nice -n 5 timeout 10 rm …` still starts `rm`.
_WRAPPERS = (
    r"""(?:(?:[A-Za-z_]\w*=(?:"[^"]*"|'[^']*'|[^\s;&|]*)|env|exec|nohup|time|command|builtin|nice|ionice|"""
    r"""stdbuf|setsid|xargs|timeout)(?:\s+-[^\s;&|]*)*(?:\s+\d+[smhd]?)?\s+)*"""
)
# Characters that end a word, for "this path component ends here".
_SEP = r"""\s;&|<>"')`"""
# A path that leaves the worktree: absolute, in a home directory, or climbing out with `..`.
_OUTSIDE = r"""["']?(?:/|~|\$\{?HOME\b|\$\{?OLDPWD\b|(?:[^""" + _SEP + r"""]*/)?\.\.(?=[/""" + _SEP + r"""]|$))"""
# A path into git's internals (hooks there run outside the sandbox the next time YokeFlow uses git).
_GITDIR = r"""["']?(?:[^""" + _SEP + r"""]*/)?\.git(?=[/""" + _SEP + r"""]|$)"""
# The only absolute paths a command may write to.
_SAFE_DEV = r"""["']?/dev/(?:null|stdout|stderr|fd/\d+)(?=[""" + _SEP + r"""]|$)"""
# The rest of one simple command (up to the next separator).
_ARGS = r"[^;&|\n]*"
_RECURSIVE_RM = r"(?=" + _ARGS + r"\s(?:-[a-zA-Z]*[rR]|--recursive\b))"
_RECURSIVE_CHMOD = r"(?=" + _ARGS + r"\s(?:-[a-zA-Z]*R|--recursive\b))"
_TARGETS_OUTSIDE = r"(?=" + _ARGS + r"\s" + _OUTSIDE + r")"
_INTERPRETER = r"(?:ba|z|da|k|c|tc|fi)?sh|python[\d.]*|perl|ruby|node|php"


def _cmd(names: str) -> str:
    """A command word among `names` (a regex alternation), also when called by path (`/usr/bin/x`) or `\\x`."""
    return _START + _WRAPPERS + r"""(?:[^\s;&|()<>"'`]*/)?\\?(?:""" + names + r""")(?=[\s;&|()<>`"']|$)"""


# `git` followed by its global options (`-C dir`, `-c key=value`, `--no-pager`, …), before the subcommand.
_GIT = _cmd("git") + r"(?:\s+(?:-[Cc]\s+[^\s;&|]+|--?[\w-]+(?:=[^\s;&|]+)?))*\s+"

# The table of refused commands, checked in order; the first rule that matches names the refusal.
# Each reason is written for the agent: what was wrong and what to do instead.
_RULES: tuple[tuple[str, str, str], ...] = (
    # Nothing to run, or a string no shell command contains.
    ("empty_command", r"\A\s*\Z", "the command is empty"),
    ("nul_byte", "\0", "the command contains a NUL byte"),
    # Privilege escalation: the agent runs as an unprivileged user on purpose.
    (
        "privilege_escalation",
        _cmd("sudo|su|doas|pkexec|runuser"),
        "sudo, su and doas are not available; install what the project needs inside the worktree "
        "(a virtualenv, node_modules, a local prefix) instead",
    ),
    # `:(){ :|:& };:` and its named variants.
    ("fork_bomb", r"(\w+|:)\s*\(\)\s*\{[^}]*\1\s*\|\s*\1\s*&", "this is a fork bomb"),
    # Disk and partition tools.
    (
        "disk_tools",
        _cmd(r"mkfs(?:\.\w+)?|mke2fs|mkswap|fdisk|sfdisk|parted|wipefs|blkdiscard"),
        "formatting or partitioning disks is never part of a coding task",
    ),
    # dd writing to a device or anywhere outside the worktree.
    (
        "dd_outside_worktree",
        _cmd("dd") + _ARGS + r"\sof=(?!" + _SAFE_DEV + r")" + _OUTSIDE,
        "dd may only write to files inside the worktree (of=relative/path)",
    ),
    # Turning the machine off.
    (
        "power_control",
        _cmd(
            r"shutdown|reboot|halt|poweroff|telinit|init\s+[06]"
            r"|systemctl\s+(?:poweroff|reboot|halt|kexec|suspend|hibernate)"
        ),
        "shutting down or rebooting the machine is not allowed",
    ),
    # Killing by name or every process: would hit YokeFlow itself and other agents' processes.
    (
        "broad_kill",
        r"(?:" + _cmd("pkill|killall|killall5") + r")|(?:" + _cmd("kill") + _ARGS + r"\s-1\s*(?=[;&|)`\n]|$))",
        "pkill, killall and kill -1 can hit processes that are not yours; kill by process id, and note that "
        "every process a command starts is killed when the command ends anyway",
    ),
    # Executing what was just downloaded: `curl … | sh`, `bash <(curl …)`, `sh -c "$(wget -O- …)"`.
    (
        "download_to_shell",
        r"(?:"
        + _cmd("curl|wget")
        # Up to the next curl/wget at most, so a long chain of them costs linear time, not quadratic.
        + r"(?:(?!\b(?:curl|wget)\b)[^;\n])*?\|\s*"
        + _WRAPPERS
        + r"""(?:[^\s;&|()<>"'`]*/)?(?:"""
        + _INTERPRETER
        + r")(?=[\s;&|)`]|$)(?!\s+-[cmeE]\b))|(?:"
        + _cmd(_INTERPRETER + r"|source|\.|eval")
        + r"""(?:\s+-[^\s;&|]*)*\s+["']?(?:<\(|\$\(|`)\s*(?:[^\s;&|()]*/)?(?:curl|wget)\b)""",
        "running a script straight from the network is not allowed; download it to a file in the worktree, "
        "read it, then run it if it is what you need",
    ),
    # rm -r on anything that is not inside the worktree.
    (
        "recursive_delete_outside",
        _cmd("rm") + _RECURSIVE_RM + _TARGETS_OUTSIDE,
        "recursive rm may only target paths inside the worktree: no absolute paths, ~, $HOME or ..",
    ),
    (
        "find_delete_outside",
        _cmd("find")
        + r"(?:\s+-[HLP])*\s+"
        + _OUTSIDE
        + r"(?="
        + _ARGS
        + r"\s-(?:delete\b|exec(?:dir)?\s+(?:[^\s;&|]*/)?rm\b))",
        "find may only delete inside the worktree; start it from a relative path such as .",
    ),
    (
        "recursive_chmod_outside",
        _cmd("chmod|chown|chgrp") + _RECURSIVE_CHMOD + _TARGETS_OUTSIDE,
        "recursive chmod/chown/chgrp may only target paths inside the worktree",
    ),
    # SSH keys and authorized_keys: reading leaks credentials, writing grants access.
    (
        "ssh_dir",
        r"""(?:~|\$\{?HOME\}?|/root|/home/[^/\s;&|<>"']+)/\.ssh(?=[/""" + _SEP + r"""]|$)""",
        "~/.ssh is off limits",
    ),
    (
        "git_global_config",
        _GIT + r"config\b" + _ARGS + r"\s--(?:global|system)\b",
        "global and system git configuration is off limits; use repository-local settings (git config KEY VALUE)",
    ),
    # Git hooks and config keys that make git run a program: they would run outside the sandbox the next
    # time YokeFlow itself uses git in this worktree.
    (
        "git_hooks",
        r"""(?:^|[/\s"'=])\.git/hooks(?=[/"""
        + _SEP
        + r"""]|$)|"""
        + _GIT
        + r"""config\b"""
        + _ARGS
        + r"""\s["']?(?i:core\.(?:hookspath|fsmonitor|sshcommand|pager|editor|askpass|gitproxy)\b"""
        + r"""|alias\.|filter\.|include(?:if)?\.|diff\.\S*(?:textconv|command)\b|gpg\.program\b|credential\.)""",
        "git hooks and git settings that run programs (core.hooksPath, core.fsmonitor, aliases, filters, "
        "credential helpers, …) are off limits",
    ),
    # Publishing is YokeFlow's job, after review.
    (
        "git_push",
        _GIT + r"""push(?=[\s;&|)`"']|$)""",
        "pushing is done by YokeFlow once the work is reviewed; commit your changes locally instead",
    ),
    # Redirection and tee writing outside the worktree or into .git.
    (
        "write_outside_worktree",
        r"(?:(?<![=\-<>])(?:\d+|&)?>>?\|?\s*|"
        + _cmd("tee")
        + _ARGS
        + r"?\s)(?!"
        + _SAFE_DEV
        + r")(?:"
        + _OUTSIDE
        + r"|"
        + _GITDIR
        + r")",
        "commands may only write to files inside the worktree (relative paths, not inside .git); "
        "/dev/null, /dev/stdout and /dev/stderr are fine",
    ),
    # cp/mv/ln/install/rsync whose destination (the last argument) is outside the worktree or in .git.
    (
        "copy_outside_worktree",
        _cmd("cp|mv|ln|install|rsync") + _ARGS + r"\s(?:" + _OUTSIDE + r"|" + _GITDIR + r")[^\s;&|]*\s*(?=[;&|)`\n]|$)",
        "files may only be copied, moved or linked to destinations inside the worktree (not inside .git)",
    ),
    # Leaving the worktree: every later relative path would then point somewhere else.
    (
        "cd_outside_worktree",
        _cmd("cd|pushd") + r"(?:\s+-[LPe@]+)*\s+" + _OUTSIDE,
        "stay inside the worktree: cd only to relative paths below the current directory",
    ),
)

POLICY: tuple[PolicyRule, ...] = tuple(
    PolicyRule(name, re.compile(pattern, re.MULTILINE), reason) for name, pattern, reason in _RULES
)


def check_command(command: str) -> None:
    """Raises CommandRefused if `command` matches a rule of POLICY."""
    # A backslash-newline continues the line; joining keeps `rm -rf \\\n /` recognisable.
    text = command.replace("\\\n", " ")
    for rule in POLICY:
        if rule.pattern.search(text):
            raise CommandRefused(f"command refused ({rule.name}): {rule.reason}", details={"rule": rule.name})
