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

import typer
from rich.logging import RichHandler

from medverify import __version__
from medverify.backends.base import Message
from medverify.backends.registry import SPEC_FORMS, make_backend
from medverify.cases.cli import app as cases_app
from medverify.cases.loading import load_case_arg
from medverify.cli_common import (
    INTERRUPTED,
    ApiKeyOpt,
    BaseUrlOpt,
    NoCacheOpt,
    TimeoutOpt,
    console,
    err_console,
    interrupt_reported,
    options_from,
    writable_dir,
)
from medverify.consult.cli import (
    GraderSpecOpt,
    PatientOpt,
    ShowTurnsOpt,
    WriterOpt,
    consult_bench,
    run_and_compare,
    run_and_print,
)
from medverify.consult.pipeline import scripted_factory
from medverify.demo import DEFAULT_CASES, DEMO_MAX_TOKENS, DEMO_TURNS, demo_job, run_name
from medverify.deploy.cli import app as deploy_app
from medverify.deploy.cli import serve_cmd
from medverify.errors import ConfigError, MedverifyError
from medverify.healthbench.cli import app as healthbench_app
from medverify.rubrics.cli import HELP as RUBRICS_HELP
from medverify.rubrics.cli import rubrics
from medverify.secrets import RedactingFilter, redact
from medverify.simulator import simulate_cli
from medverify.simulator.simulate_cli import app as simulate_app
from medverify.train.cli import app as train_app

HELP = (
    "medverify: the verifier system for medical LLMs.\n\n"
    "Scores a model *in dialogue* with a simulated patient, with clinical rubrics and graders, "
    "on HealthBench, and turns the same scores into training rewards.\n\n"
    "Backend specs (for --model, --doctor, --patient, --grader): "
    + "; ".join(SPEC_FORMS)
    + ".\n\nStart with: medverify demo"
)


def _hide_flag_types() -> None:
    """Print flags as flags in help: typer 0.29 shows ``--debug <bool>``, as if it took a value.

    The type column stays for options that take one (``--turns <int>``).
    """
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_medverify", False):  # older typer: nothing to hide
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._medverify = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
_state = {"debug": False}


def _register_subcommands() -> None:
    app.add_typer(healthbench_app, name="healthbench")
    app.add_typer(cases_app, name="cases")
    simulate_cli.scripted_doctors = scripted_factory  # simulate --doctor scripted:careful
    app.add_typer(simulate_app, name="simulate")
    app.command("consult-bench")(consult_bench)
    app.command("rubrics", help=RUBRICS_HELP)(rubrics)
    app.add_typer(train_app, name="train")
    app.add_typer(deploy_app, name="deploy")
    app.command("serve")(serve_cmd)


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
    doctor: Annotated[
        str, typer.Option(help="Backend spec of the doctor under test (or scripted:careful...).")
    ] = "local",
    compare: Annotated[
        str,
        typer.Option(
            help="A second doctor run on the same cases and shown side by side "
            "(default: the trained doctor); 'none' runs only --doctor."
        ),
    ] = "local:doctor",
    patient: PatientOpt = None,
    grader: GraderSpecOpt = "local",
    writer: WriterOpt = None,
    case: Annotated[
        list[str] | None,
        typer.Option("--case", help="Bundled case id or case file (repeatable)."),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, max=20, help="Most doctor turns.")] = DEMO_TURNS,
    max_tokens: Annotated[
        int, typer.Option(min=8, help="Most tokens per doctor turn.")
    ] = DEMO_MAX_TOKENS,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep progress and results (rerun to resume).", callback=writable_dir
        ),
    ] = None,
    show_turns: ShowTurnsOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """The main job: the embedded doctor and the trained one, in the same consultations, offline.

    Each doctor interviews the patient simulator (Fact Unit, Affective Unit, Termination Gate)
    on four bundled cases that the trained doctor never trained on; the rubric generator writes
    each consultation's criteria (diagnostic accuracy, consultation logic, treatment
    rationality, communication and empathy, medical ethics); the offline grader judges them.
    Prints both doctors' scores side by side, and the paths of each report and of
    compare.html, which shows the two transcripts of every case next to each other.
    """
    root = run_dir or Path("medverify-runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cases = [load_case_arg(c) for c in (case or DEFAULT_CASES)]
    options = options_from(base_url, api_key, no_cache, timeout)
    doctors = [doctor] if compare.strip().lower() == "none" else [doctor, compare]
    if len(set(doctors)) < len(doctors):
        raise ConfigError(f"--compare names the same doctor as --doctor ({doctor})")
    jobs = {
        name: demo_job(
            cases,
            root if len(doctors) == 1 else root / run_name(name),
            doctor=name,
            patient=patient,
            grader=grader,
            writer=writer,
            turns=turns,
            max_tokens=max_tokens,
            options=options,
        )
        for name in doctors
    }
    if len(doctors) == 1:
        run_and_print(jobs[doctor], show_turns=show_turns)
        return
    run_and_compare(jobs, root, show_turns=show_turns)


def _usage_error_types() -> tuple[type[Exception], type[Exception]]:
    """Click's ``ClickException`` and ``UsageError`` as the installed typer raises them.

    typer up to 0.26 raises click's own exceptions; from 0.27 it raises those of a copy of
    click vendored as ``typer._click``, which are no longer ``click.ClickException`` (so usage
    errors escaped as tracebacks). Both are base classes of the public ``typer.BadParameter``
    in every version, so they are taken from there.
    """
    bases = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    return bases["ClickException"], bases["UsageError"]


_ClickException, _UsageError = _usage_error_types()


def _one_line(text: str) -> str:
    return " ".join(redact(text).split())


def _usage_message(exc: Exception) -> str:
    """A usage error as one line: what is wrong, and the help command to run."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group given no command
        group = getattr(ctx, "command", None)
        names = group.list_commands(ctx) if hasattr(group, "list_commands") else []
        message = "missing command" + (f"; choose one of: {', '.join(names)}" if names else "")
    else:
        message = exc.format_message()  # type: ignore[attr-defined]
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return _one_line(message)


def main() -> None:
    """Entry point of the ``medverify`` console script.

    Exit codes: 0 done; 1 a job ran but produced nothing it could score (or a command's own
    check failed); 2 a usage or user error, shown as one line on stderr; 130 interrupted
    (Ctrl-C): finished work is kept in the run store and a rerun resumes.
    """
    code: object = 0
    try:
        # Without standalone mode typer returns what the command returned, or the exit code of
        # a ``typer.Exit`` (and 130 for Ctrl-C): both reach ``sys.exit`` below.
        code = app(standalone_mode=False)
    except MedverifyError as exc:
        if _state["debug"]:
            raise
        # One line, however long: scripts grep it and users copy it.
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        code = exc.exit_code
    except _UsageError as exc:
        print(f"error: {_usage_message(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except _ClickException as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        print(f"error: {_one_line(message)}", file=sys.stderr)
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort as exc:
        if not isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        code = INTERRUPTED  # Ctrl-C at a prompt: click's prompt turns it into Abort
    except KeyboardInterrupt:
        code = INTERRUPTED
    if code == INTERRUPTED and not interrupt_reported["done"]:
        err_console.print("interrupted; rerun with the same --run-dir to resume")
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


if __name__ == "__main__":
    main()
