"""The ``medverify`` command: a thin typer layer over importable functions.

Every command takes its backends as spec strings (see ``medverify --help``), prints where its
results went, and turns user errors into one line on stderr with exit code 2 (``--debug`` shows
the traceback). Long jobs take ``--run-dir`` and resume when rerun with it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.logging import RichHandler
from rich.panel import Panel
from rich.text import Text

from medverify import __version__
from medverify.backends.registry import SPEC_FORMS, make_backend
from medverify.cli_common import (
    ApiKeyOpt,
    BaseUrlOpt,
    NoCacheOpt,
    TimeoutOpt,
    console,
    err_console,
    options_from,
)
from medverify.errors import MedverifyError
from medverify.secrets import RedactingFilter, redact

HELP = (
    "medverify: the verifier system for medical LLMs.\n\n"
    "Scores a model *in dialogue* with a simulated patient, with clinical rubrics and graders, "
    "on HealthBench, and turns the same scores into training rewards.\n\n"
    "Backend specs (for --model, --doctor, --patient, --grader): "
    + "; ".join(SPEC_FORMS)
    + ".\n\nStart with: medverify demo"
)

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
_state = {"debug": False}


def _register_subcommands() -> None:
    from medverify.healthbench.cli import app as healthbench_app
    from medverify.simulator.cases_cli import app as cases_app

    app.add_typer(healthbench_app, name="healthbench")
    app.add_typer(cases_app, name="cases")


_register_subcommands()


def _version(value: bool) -> None:
    if value:
        console.print(f"medverify {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    _state["debug"] = debug
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Backend spec.")] = "local",
    system: Annotated[str | None, typer.Option(help="Optional system message.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.0,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Ask a backend one question: checks a spec, an endpoint or a key in one call."""
    from medverify.backends.base import Message

    messages = [Message(role="system", content=system)] if system else []
    messages.append(Message(role="user", content=prompt))

    async def run() -> None:
        options = options_from(base_url, api_key, no_cache, timeout)
        async with make_backend(model, options) as backend:
            with err_console.status(f"asking {model}..."):
                completion = await backend.complete(
                    messages, max_tokens=max_tokens, temperature=temperature
                )
        console.print(completion.text, markup=False)
        err_console.print(
            f"[dim]{model}: {completion.usage.prompt_tokens} prompt + "
            f"{completion.usage.completion_tokens} completion tokens, "
            f"{completion.latency_s:.2f} s{' (cached)' if completion.cached else ''}[/dim]"
        )

    asyncio.run(run())


@app.command()
def demo(
    doctor: Annotated[str, typer.Option(help="Backend spec of the doctor under test.")] = "local",
    patient: Annotated[str, typer.Option(help="Backend spec playing the patient.")] = "local",
    turns: Annotated[int, typer.Option(min=1, max=20, help="Most doctor turns.")] = 4,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Where to keep progress and results (rerun to resume)."),
    ] = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """The main job: a short real consultation, offline, on the embedded model.

    A doctor model interviews a simulated patient from a bundled case (AgentClinic, MIT) and
    ends with a diagnosis; the transcript is printed and saved in the run directory.
    """
    from medverify.demo import DemoTurn, run_demo_consultation, transcript_path
    from medverify.runs.store import RunStore

    run_dir = run_dir or Path("medverify-runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    opts = options_from(base_url, api_key, no_cache, timeout)
    config = {"doctor": doctor, "patient": patient, "turns": turns}

    def show(turn: DemoTurn) -> None:
        style = "cyan" if turn.role == "doctor" else "green"
        console.print(
            Panel(
                Text(turn.text or "(silence)"),
                title=turn.role,
                title_align="left",
                border_style=style,
                expand=False,
            )
        )

    async def run() -> None:
        with RunStore(run_dir, job="demo", config=config) as store:
            async with make_backend(doctor, opts) as doc, make_backend(patient, opts) as pat:
                with err_console.status(
                    "consultation in progress (the first run converts "
                    "the embedded model once, ~30 s)..."
                ):
                    transcript = await run_demo_consultation(
                        doc, pat, store, max_doctor_turns=turns, on_turn=show
                    )
        verdict = (
            f"final diagnosis: {transcript.final_diagnosis}"
            if transcript.final_diagnosis
            else "no diagnosis given within the turn limit"
        )
        console.print(
            f"{verdict}; the record's diagnosis: {transcript.correct_diagnosis}", markup=False
        )
        console.print(f"transcript: {transcript_path(run_dir)}")

    asyncio.run(run())


def main() -> None:
    """Entry point of the ``medverify`` console script."""
    try:
        app(standalone_mode=False)
    except MedverifyError as exc:
        if _state["debug"]:
            raise
        # One line, however long: scripts grep it and users copy it.
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err_console.print("interrupted; rerun with the same --run-dir to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
