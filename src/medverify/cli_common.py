"""Flags and console objects shared by the ``medverify`` sub-commands."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement

from medverify.backends.registry import BackendOptions

# No emoji codes or markup from text we did not write: ":x:" in a model reply stays ":x:".
# soft_wrap: a printed line (a path, an error) is never broken at the terminal's width, so scripts
# and users can copy it; tables and panels still fit the width.
console = Console(emoji=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
#: Exit status after Ctrl-C: 128 + SIGINT, what a shell reports.
INTERRUPTED = 130
#: Set by a command that told the user itself what Ctrl-C kept (the entry point then says
#: nothing more; by default it prints how to resume from the run directory).
interrupt_reported = {"done": False}


def print_table(table: RenderableType) -> None:
    """Print a table whole: in a file or a pipe at its natural width, not rich's 80 columns.

    Redirected output (a CI log, ``| tee``) has no terminal width, and a wide table squeezed into
    80 columns cuts every number to "0.4…". In a terminal the table fits the terminal as usual.
    """
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    wide = Console(
        file=console.file, width=max(console.width, natural), emoji=False, highlight=False
    )
    wide.print(table)


def unwritable_reason(path: Path, *, is_dir: bool = True) -> str | None:
    """Why nothing could be written at ``path`` (a folder, or a file with ``is_dir=False``).

    ``None`` when it could. Nothing is created: the path itself if it exists, else its nearest
    existing parent, must be a folder this process may write to (a file: writable itself).
    """
    path = Path(path).expanduser()
    if path.exists():
        if is_dir and not path.is_dir():
            return f"{path} is not a folder"
        if not is_dir and path.is_dir():
            return f"{path} is a folder"
        if not os.access(path, os.W_OK | (os.X_OK if is_dir else 0)):
            return f"cannot write to {path}: {_access_error(path)}"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent}: {_access_error(parent)}"
    return None


def _access_error(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS).lower()
    except (OSError, AttributeError):
        pass
    return "permission denied"


def writable_dir(value: Path | None) -> Path | None:
    """Option callback: refuse an output folder (``--run-dir``) that cannot be written, up front.

    Before any work, as one line naming the option and the path (exit code 2).
    """
    reason = None if value is None else unwritable_reason(value)
    if reason:
        raise typer.BadParameter(reason)
    return value


def writable_file(value: Path | None) -> Path | None:
    """Option callback: refuse an output file (``--out``) that cannot be written, up front."""
    reason = None if value is None else unwritable_reason(value, is_dir=False)
    if reason:
        raise typer.BadParameter(reason)
    return value


def _positive_seconds(value: float | None) -> float | None:
    if value is not None and not value > 0:  # also refuses nan
        raise typer.BadParameter(f"must be more than 0 seconds, got {value:g}")
    return value


BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible endpoint for openai:<model> specs (default $OPENAI_BASE_URL). "
        "user:password@ in it is sent as HTTP basic auth and never shown.",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="MEDVERIFY_API_KEY",
        help="API key for the --base-url endpoint (default $MEDVERIFY_API_KEY, else "
        "$OPENAI_API_KEY, which is only sent over https or to this machine).",
        show_default=False,
        show_envvar=False,
    ),
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Do not answer identical requests from the cache.")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", help="Seconds allowed for one model call (> 0).", callback=_positive_seconds
    ),
]


ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", "-c", help="Most model calls in flight at once.")
]


def options_from(
    base_url: str | None,
    api_key: str | None,
    no_cache: bool,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> BackendOptions:
    """Backend options from the common flags."""
    return BackendOptions(
        base_url=base_url,
        api_key=api_key,
        use_cache=not no_cache,
        timeout_s=timeout,
        concurrency=concurrency,
    )


GraderBaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--grader-base-url",
        help="Endpoint for an openai:<model> grader, when it differs from --base-url "
        "(default $OPENAI_BASE_URL).",
    ),
]
GraderApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--grader-api-key",
        envvar="MEDVERIFY_GRADER_API_KEY",
        help="API key for the grader endpoint (default $MEDVERIFY_GRADER_API_KEY; else --api-key "
        "when the grader uses the --base-url endpoint, else $OPENAI_API_KEY over https or to "
        "this machine only).",
        show_default=False,
        show_envvar=False,
    ),
]


def grader_options_from(
    grader_base_url: str | None,
    grader_api_key: str | None,
    base_url: str | None,
    api_key: str | None,
    no_cache: bool,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> BackendOptions:
    """Backend options of the grader: its own endpoint and key, else the model's.

    The model's ``--api-key`` goes to the grader only when the grader talks to the same endpoint:
    a key given for a local server is never sent to another one.
    """
    same_endpoint = grader_base_url is None or grader_base_url == base_url
    if grader_api_key is None and same_endpoint:
        grader_api_key = api_key
    return options_from(grader_base_url or base_url, grader_api_key, no_cache, timeout, concurrency)
