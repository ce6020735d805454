"""``medverify deploy quantize|distill-draft|report|methods`` and ``medverify serve``.

Thin wrappers over :mod:`medverify.deploy.quantize`, :mod:`~medverify.deploy.draft`,
:mod:`~medverify.deploy.report` and :mod:`~medverify.deploy.serve`; the whole path for a new user::

    medverify deploy quantize --model local --method int8-dynamic --out models/q8
    medverify deploy distill-draft --target local --out models/draft
    medverify serve --model local --quantized models/q8 --draft models/draft --port 8000 &
    medverify demo --doctor openai:local --base-url http://127.0.0.1:8000/v1
    medverify deploy report --quantized models/q8 --draft models/draft --out runs/deploy
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medverify.backends.registry import BackendOptions
from medverify.cases.loading import load_case_arg
from medverify.cli_common import console, err_console, print_table, writable_dir
from medverify.consult.pipeline import consult_hook
from medverify.demo import DEFAULT_CASES
from medverify.deploy import report as rep
from medverify.deploy import serve as srv
from medverify.deploy.common import resolve_model
from medverify.deploy.draft import DraftConfig, distill_draft, held_out_prompts
from medverify.deploy.eagle_train import EagleConfig, train_eagle
from medverify.deploy.engine import is_ngram
from medverify.deploy.quantize import METHODS, cuda_available, quantize

app = typer.Typer(
    help="Quantize a model, train a draft for speculative decoding, measure the deployment.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="local, local:doctor, hf:<dir> or a checkpoint directory."),
]


@app.command("methods")
def methods() -> None:
    """List the quantization methods, their target and what they need."""
    table = Table("method", "target", "library", "bits", "needs", "what")
    for m in METHODS.values():
        needs = ", ".join(x for x in (m.install, "CUDA GPU" if m.needs_cuda else None) if x)
        table.add_row(m.name, m.target, m.library, str(m.bits), needs or "—", m.summary)
    print_table(table)


@app.command("quantize")
def quantize_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory to create.", callback=writable_dir)
    ],
    model: ModelOpt = "local",
    method: Annotated[
        str,
        typer.Option(
            help="int8-dynamic (CPU), torchao-int8/int4, bnb-int8/nf4, w8a16/w4a16 "
            "(vLLM), gguf-q8_0/q4_k_m (llama.cpp); see 'deploy methods'."
        ),
    ] = "int8-dynamic",
    gguf_source: Annotated[
        Path | None, typer.Option(help="GGUF file to requantize (gguf-* methods).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Quantize a model's weights and save them with a manifest (loadable by serve and report)."""
    with err_console.status(f"quantizing {model} with {method}..."):
        result = quantize(model, method, out, gguf_source=gguf_source, overwrite=overwrite)
    m = result.manifest
    ratio = m.output_bytes / m.source_bytes if m.source_bytes else float("nan")
    console.print(
        f"{result.out}: {m.method} for {m.target}; weights {m.source_bytes / 2**20:.0f} MB -> "
        f"{m.output_bytes / 2**20:.0f} MB ({ratio:.2f}x) in {result.seconds:.1f} s",
        markup=False,
    )


@app.command("distill-draft")
def distill_draft_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory to create.", callback=writable_dir)
    ],
    target: Annotated[
        str, typer.Option(help="The target model: local, hf:<dir> or a dir.")
    ] = "local",
    layers: Annotated[int, typer.Option(min=1, help="Target layers the draft starts from.")] = 2,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 300,
    gen_tokens: Annotated[int, typer.Option(min=2, help="Tokens per target reply.")] = 128,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    max_prompts: Annotated[int | None, typer.Option(min=2)] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="Training prompts (.jsonl with 'prompt', or one per line).")
    ] = None,
    time_budget: Annotated[
        float | None, typer.Option(help="Stop training after this many seconds.")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Keep the target's replies here (rerun to resume).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    loss: Annotated[
        str, typer.Option(help="ce (greedy tokens) or kd (+ KL to the target's distribution).")
    ] = "ce",
    gen_batch: Annotated[int, typer.Option(min=1, help="Prompts the target answers at once.")] = 8,
    holdout: Annotated[int, typer.Option(min=1, help="Prompts kept out to measure.")] = 6,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    kind: Annotated[
        str,
        typer.Option(
            help="model (a small model cut from the target, for transformers/vLLM) or eagle "
            "(a head reading the target's features; faster on CPU)."
        ),
    ] = "model",
    vocab: Annotated[
        int | None, typer.Option(min=16, help="eagle: LM-head rows kept (most frequent tokens).")
    ] = 8192,
    unroll: Annotated[
        int, typer.Option(min=1, max=4, help="eagle: drafting steps simulated in training.")
    ] = 2,
    target_dtype: Annotated[
        str, typer.Option(help="eagle: auto, or float32 when the head will serve a fp32 target.")
    ] = "auto",
    init: Annotated[
        Path | None, typer.Option(help="eagle: continue training this head directory.")
    ] = None,
) -> None:
    """Train a draft (a small model or an EAGLE head) on the target's own greedy replies."""
    if loss not in ("ce", "kd"):
        raise typer.BadParameter(f"--loss must be ce or kd, got {loss!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"--device must be cpu, cuda or auto, got {device!r}")
    if kind not in ("model", "eagle"):
        raise typer.BadParameter(f"--kind must be model or eagle, got {kind!r}")
    if target_dtype not in ("auto", "float32"):
        raise typer.BadParameter(f"--target-dtype must be auto or float32, got {target_dtype!r}")
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if kind == "eagle":
        _train_eagle_cmd(
            target,
            out,
            {
                "layers": layers,
                "vocab": vocab,
                "unroll": unroll,
                "target_dtype": target_dtype,
                "steps": steps,
                "gen_tokens": gen_tokens,
                "batch_size": batch_size,
                "lr": lr,
                "max_prompts": max_prompts,
                "time_budget_s": time_budget,
                "gen_batch": gen_batch,
                "holdout": holdout,
            },
            prompts=prompts,
            run_dir=run_dir,
            overwrite=overwrite,
            device=device,
            init=init,
        )
        return
    config = DraftConfig(
        layers=layers,
        steps=steps,
        gen_tokens=gen_tokens,
        batch_size=batch_size,
        lr=lr,
        max_prompts=max_prompts,
        time_budget_s=time_budget,
        loss=loss,  # type: ignore[arg-type]
        gen_batch=gen_batch,
        holdout=holdout,
    )
    with err_console.status("distilling a draft...") as status:
        result = distill_draft(
            target,
            out,
            config,
            prompts_file=prompts,
            run_dir=run_dir,
            overwrite=overwrite,
            on_progress=lambda msg: status.update(msg),
            device=device,
        )
    d = result.manifest.details
    console.print(
        f"{result.out}: {layers}-layer draft of {target}; {d['steps_done']} steps in "
        f"{d['train_seconds']} s; held-out top-1 agreement with the target "
        f"{d['held_out_agreement_before']:.3f} -> {d['held_out_agreement_after']:.3f}",
        markup=False,
    )


def _train_eagle_cmd(
    target: str,
    out: Path,
    settings: dict,
    *,
    prompts: Path | None,
    run_dir: Path | None,
    overwrite: bool,
    device: str,
    init: Path | None,
) -> None:

    config = EagleConfig.model_validate(settings)
    with err_console.status("training an EAGLE head...") as status:
        result = train_eagle(
            target,
            out,
            config,
            prompts_file=prompts,
            run_dir=run_dir,
            overwrite=overwrite,
            on_progress=lambda msg: status.update(msg),
            device=device,
            init=init,
        )
    d = result.manifest.details
    console.print(
        f"{result.out}: {d['layers']}-layer EAGLE head of {target} over {d['vocab_kept']} tokens; "
        f"{d['steps_done']} steps in {d['train_seconds']} s; held-out top-1 agreement with the "
        f"target {d['held_out_agreement_before']:.3f} -> {d['held_out_agreement_after']:.3f}",
        markup=False,
    )


@app.command("report")
def report_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where report.json/html go.", callback=writable_dir)
    ],
    model: ModelOpt = "local",
    quantized: Annotated[Path | None, typer.Option(help="A 'deploy quantize' directory.")] = None,
    draft: Annotated[
        Path | None,
        typer.Option(help="A 'deploy distill-draft' directory, or ngram (prompt lookup)."),
    ] = None,
    n_prompts: Annotated[int, typer.Option(min=1, help="Prompts to time.")] = 6,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per timed reply.")] = 64,
    healthbench: Annotated[
        Path | None, typer.Option(help="HealthBench JSONL for the quality slice.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="HealthBench rows to grade.")] = 5,
    grader: Annotated[str, typer.Option(help="Grader spec (same for every variant).")] = "local",
    grader_base_url: Annotated[str | None, typer.Option()] = None,
    consult_cases: Annotated[
        int,
        typer.Option(
            min=0, help="Bundled demo cases for the consultation-benchmark quality (0: skip)."
        ),
    ] = 0,
) -> None:
    """Memory, load time, tokens/s, TTFT, acceptance and quality of fp / quantized / + draft."""
    model_dir = resolve_model(model)
    variants = rep.make_variants(model_dir, quantized=quantized, draft=draft)
    held = held_out_prompts(draft) if draft is not None and not is_ngram(draft) else None
    prompts = (
        [[{"role": "user", "content": p.prompt}] for p in held][:n_prompts]
        if held
        else rep.default_prompts(n_prompts)
    )
    with err_console.status("measuring...") as status:
        results, _ = rep.measure(
            variants, prompts, max_new_tokens=max_tokens, on_progress=status.update
        )
        if healthbench is not None:
            status.update(f"grading a HealthBench slice with {grader}...")
            scores = asyncio.run(
                rep.healthbench_quality(
                    variants,
                    healthbench,
                    grader,
                    out / "healthbench",
                    limit=limit,
                    grader_options=BackendOptions(base_url=grader_base_url),
                )
            )
            for r in results:
                r.healthbench = scores.get(r.name)
        if consult_cases:
            status.update(f"consultation benchmark on {consult_cases} cases with {grader}...")
            cases = [load_case_arg(c) for c in DEFAULT_CASES[:consult_cases]]
            hook = consult_hook(
                cases,
                out / "consult",
                grader=grader,
                grader_options=BackendOptions(base_url=grader_base_url),
            )
            consult_scores = asyncio.run(rep.consult_quality(variants, hook))
            for r in results:
                r.consult = consult_scores.get(r.name)
    report = rep.DeployReport(
        model=model,
        reference=results[0].name,
        variants=results,
        grader=grader if healthbench is not None or consult_cases else None,
        machine=rep.machine_info(),
        settings={
            "n_prompts": len(prompts),
            "prompts": "draft held-out" if held else "bundled",
            "max_tokens": max_tokens,
            "greedy": True,
            "healthbench": str(healthbench) if healthbench else None,
            "limit": limit,
            "consult_cases": consult_cases,
        },
    )
    paths = rep.write_report(report, out)
    table = Table(*(title for title, _ in rep.COLUMNS))
    for row in rep.table_rows(report):
        table.add_row(*row)
    print_table(table)
    console.print(f"report: {paths['html']} and {paths['json']}", markup=False)


def serve_cmd(
    model: ModelOpt = "local",
    quantized: Annotated[Path | None, typer.Option(help="A 'deploy quantize' directory.")] = None,
    draft: Annotated[
        Path | None,
        typer.Option(help="A 'deploy distill-draft' directory, or ngram (prompt lookup)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    name: Annotated[
        str | None, typer.Option(help="Model name clients send (default: 'local' or the dir).")
    ] = None,
    engine: Annotated[str, typer.Option(help="auto, local (CPU server) or vllm.")] = "auto",
    draft_tokens: Annotated[
        int | None, typer.Option(min=1, max=64, help="Draft tokens per round (8; ngram 3).")
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(min=1, max=256, help="CPU server: concurrent greedy requests per batch."),
    ] = 8,
    max_tokens_limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="CPU server: most max_tokens a request may ask for (default: the context)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="MEDVERIFY_SERVE_API_KEY",
            show_default=False,
            help="Require 'Authorization: Bearer <key>' (401 otherwise); never logged.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the vLLM command (shell-quoted) instead of running it.")
    ] = False,
) -> None:
    """Serve a model (optionally quantized, with a draft) as an OpenAI-compatible endpoint."""
    config = srv.ServeConfig(
        model=model,
        quantized=quantized,
        draft=draft,
        host=host,
        port=port,
        name=name,
        engine=engine,
        draft_tokens=draft_tokens,
        max_batch_size=max_batch,
        max_tokens_limit=max_tokens_limit,
        api_key=api_key or None,
    )
    chosen = srv.choose_engine(engine)
    if chosen == "vllm" or dry_run:
        cmd = srv.vllm_command(config, resolve_model(model))
        # plain print: rich would wrap a long line, and the line must paste into a shell
        print(srv.shell_command(cmd), flush=True)
        if config.api_key is not None:
            err_console.print(
                "the API key goes to vLLM as VLLM_API_KEY in its environment (not shown)"
            )
        if not dry_run:
            os.execvpe(cmd[0], cmd, {**os.environ, **srv.vllm_env(config)})
        return

    def ready(url: str, eng: object) -> None:
        err_console.print(
            f"serving {config.name or 'the model'} at {url} (chat completions, streaming); "
            f"try: medverify chat hello -m openai:{getattr(eng, 'name', 'local')} --base-url {url}"
        )

    err_console.print("[dim]loading the model...[/dim]")
    try:
        asyncio.run(srv.serve_forever(config, on_ready=ready))
    except KeyboardInterrupt:
        err_console.print("stopped")
