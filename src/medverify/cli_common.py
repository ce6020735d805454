"""Flags and console objects shared by the ``medverify`` sub-commands."""

from __future__ import annotations

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


BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible endpoint for openai:<model> specs (default $OPENAI_BASE_URL).",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key for openai:<model> specs (default $OPENAI_API_KEY; prefer the variable).",
        show_default=False,
    ),
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Do not answer identical requests from the cache.")
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds allowed for one model call.")
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
        help="API key for the grader endpoint (default $OPENAI_API_KEY).",
        show_default=False,
    ),
]
