"""What a deployment costs and gains, measured side by side: ``medverify deploy report``.

For the full-precision model, its quantized version and each with the draft, on the same prompts,
interleaved prompt by prompt (so a busy machine slows every variant alike):

* weights in memory (parameters, buffers and packed int8 weights) and load time;
* greedy tokens/s for one user, and for a batch of all prompts at once (not with a draft:
  transformers' assisted decoding takes one sequence at a time);
* time to the first token;
* the draft's acceptance rate and tokens per target forward pass;
* greedy agreement: how many replies are identical to the full-precision model's;
* quality with *the same grader* for every variant: a HealthBench slice scored by the HealthBench
  pipeline (``healthbench grade`` on each variant's completions), and optionally the consultation
  benchmark through the ``consult`` hook (any ``async (name, backend) -> score`` function).

It writes ``report.json``, ``report.html`` (table and inline SVG charts, offline) and returns a
:class:`DeployReport` the CLI prints as a table.
"""

from __future__ import annotations

import html
import json
import logging
import platform
import statistics
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medverify.backends.base import Backend, SamplingParams
from medverify.backends.registry import BackendOptions
from medverify.backends.torch_runtime import import_torch
from medverify.deploy.backend import EngineBackend
from medverify.deploy.common import read_manifest
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.engine import Engine, Generation
from medverify.grading.scoring import Stat
from medverify.healthbench.data import load_examples
from medverify.healthbench.pipeline import HealthBenchJob, run_job
from medverify.report.charts import bar_chart

log = logging.getLogger(__name__)

ConsultHook = Callable[[str, Backend], Awaitable[float | Stat]]


class VariantResult(BaseModel):
    """One deployment configuration's measurements."""

    name: str
    target: str
    draft: str | None = None
    load_s: float
    weights_mb: float
    draft_weights_mb: float = 0.0
    single_tok_s: float
    ttft_s: float | None = None
    batched_tok_s: float | None = None
    batch_size: int | None = None
    acceptance: float | None = None
    tokens_per_target_pass: float
    #: whether float linear layers ran :mod:`medverify.backends.cpu_linear`'s few-row kernel
    #: (a speedup is only comparable between variants that agree on it)
    cpu_linear: bool = False
    identical_to_reference: int
    n_prompts: int
    completion_tokens: int
    healthbench: Stat | None = None
    consult: Stat | None = None


class DeployReport(BaseModel):
    """The report's JSON."""

    model: str
    reference: str
    variants: list[VariantResult]
    settings: dict[str, Any]
    grader: str | None = None
    machine: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )


class Variant(BaseModel):
    """A configuration to measure: an engine and whether to use its draft."""

    model_config = {"arbitrary_types_allowed": True}

    name: str
    engine: Any
    use_draft: bool = False


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured."""
    torch, transformers = import_torch("deploy")
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def make_variants(
    model_dir: Path,
    *,
    quantized: Path | None = None,
    draft: Path | str | None = None,
    method: str = "fp",
) -> list[Variant]:
    """fp, fp + draft, quantized, quantized + draft (those the given directories allow)."""
    fp = Engine(model_dir, draft=draft, name="fp")
    kind = "ngram" if fp.ngram else "draft"
    variants = [Variant(name=method, engine=fp)]
    if draft is not None:
        variants.append(Variant(name=f"{method} + {kind}", engine=fp, use_draft=True))
    if quantized is not None:
        qname = read_manifest(quantized, kind="quantized").method
        q = Engine(quantized, draft=draft, name=qname)
        variants.append(Variant(name=qname, engine=q))
        if draft is not None:
            variants.append(Variant(name=f"{qname} + {kind}", engine=q, use_draft=True))
    return variants


def _engines(variants: Sequence[Variant]) -> list[Engine]:
    seen: dict[int, Engine] = {}
    for v in variants:
        seen.setdefault(id(v.engine), v.engine)
    return list(seen.values())


def measure(
    variants: Sequence[Variant],
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int = 64,
    batched: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[list[VariantResult], dict[str, list[Generation]]]:
    """Measure speed, memory and greedy agreement of each variant on the same prompts.

    The first variant is the reference for agreement. Prompts are run interleaved (prompt 1 on
    every variant, then prompt 2...) after one warm-up generation per variant.
    """
    say = on_progress or (lambda _m: None)
    for engine in _engines(variants):
        engine.load()
    params = SamplingParams(max_tokens=max_new_tokens)
    for v in variants:  # warm-up: first-call allocations and lazy kernels
        v.engine.generate(prompts[0], SamplingParams(max_tokens=4), use_draft=v.use_draft)
    gens: dict[str, list[Generation]] = {v.name: [] for v in variants}
    for i, messages in enumerate(prompts):
        for v in variants:
            gens[v.name].append(v.engine.generate(messages, params, use_draft=v.use_draft))
        say(f"prompt {i + 1}/{len(prompts)}")
    ref = [g.text for g in gens[variants[0].name]]
    results = []
    for v in variants:
        rows = gens[v.name]
        tokens = sum(g.stats.completion_tokens for g in rows)
        seconds = sum(g.stats.seconds for g in rows)
        ttfts = [g.stats.first_token_s for g in rows if g.stats.first_token_s is not None]
        passes = sum(g.stats.target_calls for g in rows)
        draft_calls = sum(g.stats.draft_calls for g in rows)
        accepted = sum(g.stats.accepted for g in rows)
        mem = v.engine.memory_bytes()
        batch_tok_s = None
        if batched and not v.use_draft:
            encoded = [v.engine.encode(m) for m in prompts]
            replies, secs = v.engine.generate_batch(encoded, max_new_tokens)
            batch_tok_s = sum(len(r) for r in replies) / secs if secs > 0 else None
        results.append(
            VariantResult(
                name=v.name,
                target=str(v.engine.target_path),
                draft=v.engine.draft_label if v.use_draft else None,
                load_s=round(v.engine.load_seconds or 0.0, 2),
                weights_mb=round(mem["target"] / 2**20, 1),
                draft_weights_mb=round(mem["draft"] / 2**20, 1) if v.use_draft else 0.0,
                single_tok_s=round(tokens / seconds, 2) if seconds else 0.0,
                ttft_s=round(statistics.median(ttfts), 3) if ttfts else None,
                batched_tok_s=round(batch_tok_s, 2) if batch_tok_s else None,
                batch_size=len(prompts) if batch_tok_s else None,
                acceptance=round(min(1.0, accepted / draft_calls), 3) if draft_calls else None,
                tokens_per_target_pass=round(tokens / passes, 3) if passes else 0.0,
                cpu_linear=bool(v.engine.column_linear),
                identical_to_reference=sum(
                    1 for a, b in zip(ref, (g.text for g in rows), strict=True) if a == b
                ),
                n_prompts=len(rows),
                completion_tokens=tokens,
            )
        )
    return results, gens


async def healthbench_quality(
    variants: Sequence[Variant],
    data: Path,
    grader: str,
    run_dir: Path,
    *,
    limit: int = 5,
    max_tokens: int = 256,
    grader_options: Any = None,
) -> dict[str, Stat]:
    """Grade every variant's completions on the first ``limit`` HealthBench rows with one grader.

    Completions are written as ``completions.jsonl`` per variant and graded through
    :func:`medverify.healthbench.pipeline.run_job` (mode ``completions``), so scoring, failure
    handling and resume are HealthBench's own.
    """
    import asyncio

    examples = load_examples(data).examples[:limit]
    params = SamplingParams(max_tokens=max_tokens)
    scores: dict[str, Stat] = {}
    for v in variants:
        vdir = run_dir / _slug(v.name)
        vdir.mkdir(parents=True, exist_ok=True)
        comp = vdir / "completions.jsonl"
        if not comp.is_file():
            lines = []
            for ex in examples:
                gen = await asyncio.to_thread(
                    v.engine.generate, ex.messages(), params, use_draft=v.use_draft
                )
                lines.append(json.dumps({"prompt_id": ex.prompt_id, "completion": gen.text}))
            tmp = comp.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            tmp.replace(comp)
        job = HealthBenchJob(
            data=data,
            grader=grader,
            run_dir=vdir / "graded",
            mode="completions",
            completions=comp,
            limit=limit,
            grader_options=grader_options or BackendOptions(),
        )
        outcome = await run_job(job)
        scores[v.name] = outcome.results.overall
    return scores


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


async def consult_quality(variants: Sequence[Variant], hook: ConsultHook) -> dict[str, Stat]:
    """Run the consultation-benchmark hook on each variant (as a backend)."""
    out: dict[str, Stat] = {}
    for v in variants:
        backend = EngineBackend(v.engine, spec=f"deploy:{v.name}", use_draft=v.use_draft)
        value = await hook(v.name, backend)
        out[v.name] = value if isinstance(value, Stat) else Stat(score=float(value), std=0.0, n=1)
    return out


COLUMNS = (
    ("variant", "name"),
    ("weights MB", "weights_mb"),
    ("load s", "load_s"),
    ("tok/s (1 user)", "single_tok_s"),
    ("tok/s (batch)", "batched_tok_s"),
    ("TTFT s", "ttft_s"),
    ("acceptance", "acceptance"),
    ("tok/target pass", "tokens_per_target_pass"),
    ("identical", "identical"),
    ("HealthBench", "healthbench"),
    ("consult", "consult"),
)


def table_rows(report: DeployReport) -> list[list[str]]:
    """The report as rows of strings, in :data:`COLUMNS` order (for rich and HTML tables)."""
    rows = []
    for v in report.variants:
        row = []
        for _title, key in COLUMNS:
            if key == "identical":
                row.append(f"{v.identical_to_reference}/{v.n_prompts}")
                continue
            value = getattr(v, key)
            if isinstance(value, Stat):
                row.append(f"{value.score:.3f} ± {value.std:.3f} (n={value.n})")
            elif value is None:
                row.append("—")
            elif isinstance(value, float):
                row.append(f"{value:.3f}" if value < 10 else f"{value:.1f}")
            else:
                row.append(str(value))
        rows.append(row)
    return rows


def render_html(report: DeployReport) -> str:
    """An offline HTML page: settings, the table, and bar charts of speed, memory and quality."""

    def stat(value: float) -> Stat:
        return Stat(score=value, std=0.0, n=report.variants[0].n_prompts)

    speed = [(v.name, stat(v.single_tok_s)) for v in report.variants]
    mem = [(v.name, stat(v.weights_mb + v.draft_weights_mb)) for v in report.variants]
    charts = [
        bar_chart(
            speed, title="greedy tokens/s, one user", max_value=max(s.score for _, s in speed) or 1
        ),
        bar_chart(
            mem,
            title="weights in memory, MB (target + draft)",
            max_value=max(s.score for _, s in mem) or 1,
        ),
    ]
    quality = [(v.name, v.healthbench) for v in report.variants if v.healthbench is not None]
    if quality:
        charts.append(bar_chart(quality, title=f"HealthBench slice, grader {report.grader}"))
    consult = [(v.name, v.consult) for v in report.variants if v.consult is not None]
    if consult:
        charts.append(bar_chart(consult, title="consultation benchmark"))
    head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in table_rows(report)
    )
    settings = html.escape(json.dumps({**report.settings, "machine": report.machine}, indent=1))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>medverify deploy report</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#1f2933}"
        "table{border-collapse:collapse}td,th{border:1px solid #d5dae1;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}"
        "pre{background:#f5f7fa;padding:1em}</style></head><body>"
        f"<h1>Deployment report: {html.escape(report.model)}</h1>"
        f"<p>Reference for agreement: <b>{html.escape(report.reference)}</b>; created "
        f"{html.escape(report.created_at)}.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        + "".join(f"<div>{c}</div>" for c in charts)
        + f"<h2>Settings</h2><pre>{settings}</pre></body></html>\n"
    )


def write_report(report: DeployReport, out: Path) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    return paths


def default_prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` bundled medical prompts as single-turn conversations."""
    prompts = bundled_prompts()
    return [[{"role": "user", "content": p.prompt}] for p in prompts[:n]]
