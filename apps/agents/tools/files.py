"""File tools. Every path goes through `resolve_path`: relative to the worktree, never out of it; every file is
opened without following links and checked after opening (one hard link, still inside the worktree)."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pydantic

from apps.agents.tools.base import Input, Tool, ToolContext
from apps.core.errors import SandboxError, ValidationError

SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache", ".pytest_cache"})
MAX_READ_BYTES = 2 * 1024 * 1024
MAX_LISTED = 1000
Path_ = pydantic.Field(description="Path relative to the worktree root, e.g. 'src/app.py'.", min_length=1)


class ReadInput(Input):
    path: str = Path_
    offset: int = pydantic.Field(1, ge=1, description="First line to return (1-based).")
    limit: int = pydantic.Field(2000, ge=1, le=20_000, description="How many lines to return.")


class WriteInput(Input):
    path: str = Path_
    content: str


class EditInput(Input):
    path: str = Path_
    old_string: str = pydantic.Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new_string: str


class ListInput(Input):
    path: str = pydantic.Field(".", description="Directory relative to the worktree root.")


class SearchInput(Input):
    pattern: str = pydantic.Field(min_length=1, description="Python regular expression.")
    path: str = "."
    max_results: int = pydantic.Field(200, ge=1, le=2000)


class PathOutsideWorktree(SandboxError):
    code = "path_outside_worktree"


_USE_RELATIVE = "use a path relative to the worktree root"


def resolve_path(root: Path | str, path: str, *, must_exist: bool = False) -> Path:
    """The absolute, symlink-resolved form of `path` (relative to `root`), refusing anything outside `root`."""
    base = Path(root).resolve()
    _check_path_text(path)
    try:
        resolved = (base / path).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SandboxError(
            f"path {path!r} cannot be resolved ({exc}); {_USE_RELATIVE}", code="invalid_path", details={"path": path}
        ) from exc
    if not resolved.is_relative_to(base):
        raise PathOutsideWorktree(_outside_message(path), details={"path": path})
    # Checked on both forms: the text may name .git directly, or a symlink inside the worktree may lead there.
    if _has_git_part(Path(path).parts) or _has_git_part(resolved.relative_to(base).parts):
        raise PathOutsideWorktree(
            f"path {path!r} is inside .git, which is off limits: git's internals are managed by YokeFlow "
            "(use git commands to look at history and status)",
            details={"path": path},
        )
    if must_exist and not resolved.exists():
        raise SandboxError(f"path {path!r} does not exist in the worktree", code="not_found", details={"path": path})
    return resolved


def _check_path_text(path: str) -> None:
    """Refusals that need no file system: they are about what the agent wrote, not where it leads."""
    if not path or not path.strip():
        raise PathOutsideWorktree(f"path is empty; {_USE_RELATIVE}, or '.' for the root itself", details={"path": path})
    if "\0" in path:
        raise PathOutsideWorktree(f"path {path!r} contains a NUL byte; {_USE_RELATIVE}", details={"path": path})
    if os.path.isabs(path):
        raise PathOutsideWorktree(f"path {path!r} is absolute; {_USE_RELATIVE}", details={"path": path})
    if path.startswith("~"):
        raise PathOutsideWorktree(
            f"path {path!r} points into a home directory, which is outside the worktree; {_USE_RELATIVE}",
            details={"path": path},
        )


def _outside_message(path: str) -> str:
    # Telling `../x` apart from a symlink that leads out helps the agent understand what went wrong.
    if os.path.normpath(path).split(os.sep)[0] == "..":
        return f"path {path!r} is outside the worktree; {_USE_RELATIVE}"
    return f"path {path!r} leads outside the worktree through a symbolic link; {_USE_RELATIVE}"


def _has_git_part(parts: tuple[str, ...]) -> bool:
    return any(part.casefold() == ".git" for part in parts)


def _relative(context: ToolContext, path: Path) -> str:
    return path.relative_to(Path(context.workdir).resolve()).as_posix() or "."


def _open_checked(path: Path, flags: int, root: Path) -> int:
    """Open `path` without following a final symlink, then check what was opened: a regular file with one link (a
    hard link could be a file outside the worktree), still inside `root` after any race. Returns the descriptor."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SandboxError(f"{path.name} is a symbolic link; open what it points to", code="symlink") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SandboxError(f"{path.name} is not a file", code="not_a_file")
        if info.st_nlink > 1:
            raise SandboxError(f"{path.name} has {info.st_nlink} hard links; the file tools only open files with one "
                               "(a hard link may be a file outside the worktree)", code="hard_link")
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not opened.is_relative_to(root.resolve()):
            raise SandboxError(f"{path.name} is outside the worktree", code="path_outside_worktree")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_text(path: Path, root: Path) -> str:
    if not path.is_file():
        raise SandboxError(f"{path.name} is not a file", code="not_a_file")
    fd = _open_checked(path, os.O_RDONLY, root)
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > MAX_READ_BYTES:
            raise SandboxError(f"{path.name} is larger than {MAX_READ_BYTES} bytes; search it instead",
                               code="too_large")
        data = handle.read(MAX_READ_BYTES + 1)
    if b"\0" in data[:8192]:
        raise SandboxError(f"{path.name} is a binary file", code="binary_file")
    return data.decode("utf-8", errors="replace")


def _write_text(path: Path, text: str, root: Path) -> None:
    fd = _open_checked(path, os.O_WRONLY | os.O_CREAT, root)
    with os.fdopen(fd, "wb") as handle:
        handle.truncate(0)  # only now: a refused file must stay as it was
        handle.write(text.encode("utf-8"))


def read_file(context: ToolContext, args: ReadInput) -> str:
    path = resolve_path(context.workdir, args.path, must_exist=True)
    lines = _read_text(path, context.workdir).splitlines(keepends=True)
    chosen = lines[args.offset - 1 : args.offset - 1 + args.limit]
    text = "".join(chosen)
    if len(chosen) < len(lines):
        text += f"\n[lines {args.offset}–{args.offset + len(chosen) - 1} of {len(lines)}]"
    return text or "(empty file)"


def write_file(context: ToolContext, args: WriteInput) -> str:
    path = resolve_path(context.workdir, args.path)
    existed = path.exists()
    if existed and path.is_dir():
        raise SandboxError(f"{args.path} is a directory", code="is_a_directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, args.content, context.workdir)
    return f"{'replaced' if existed else 'created'} {_relative(context, path)} ({len(args.content.encode())} bytes)"


def edit_file(context: ToolContext, args: EditInput) -> str:
    path = resolve_path(context.workdir, args.path, must_exist=True)
    text = _read_text(path, context.workdir)
    count = text.count(args.old_string)
    if count != 1:
        where = "was not found" if count == 0 else f"occurs {count} times; include more surrounding text"
        raise ValidationError(f"old_string {where} in {args.path}; read the file and try again", code="edit_no_match")
    _write_text(path, text.replace(args.old_string, args.new_string, 1), context.workdir)
    return f"edited {_relative(context, path)}"


def walk_files(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            yield Path(directory) / name


def list_files(context: ToolContext, args: ListInput) -> str:
    root = resolve_path(context.workdir, args.path, must_exist=True)
    if root.is_file():
        return _relative(context, root)
    names = []
    for path in walk_files(root):
        if len(names) == MAX_LISTED:
            names.append(f"[… more than {MAX_LISTED} files; list a subdirectory]")
            break
        names.append(_relative(context, path))
    return "\n".join(names) or "(no files)"


def search_files(context: ToolContext, args: SearchInput) -> str:
    try:
        pattern = re.compile(args.pattern)
    except re.error as exc:
        raise ValidationError(f"pattern is not a valid regular expression: {exc}", code="bad_pattern") from None
    root = resolve_path(context.workdir, args.path, must_exist=True)
    hits: list[str] = []
    for path in [root] if root.is_file() else walk_files(root):
        try:
            text = _read_text(path, context.workdir)
        except (SandboxError, OSError):
            continue  # binary or huge files are not searched
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{_relative(context, path)}:{number}: {line[:300]}")
                if len(hits) >= args.max_results:
                    return "\n".join(hits) + f"\n[stopped at {args.max_results} matches]"
    return "\n".join(hits) or "no matches"


FILE_TOOLS = (
    Tool("read_file", "Read a text file of the worktree (optionally a range of lines).", ReadInput, read_file),
    Tool("write_file", "Create or replace a file in the worktree; parent directories are created.", WriteInput,
         write_file),
    Tool("edit_file", "Replace one exact, unique occurrence of old_string with new_string in a file.", EditInput,
         edit_file),
    Tool("list_files", "List the files under a directory of the worktree (recursive, .git skipped).", ListInput,
         list_files),
    Tool("search_files", "Search the worktree's text files for a regular expression; answers path:line: text.",
         SearchInput, search_files),
)
