r"""bf16 vs quantized vs + draft on one GPU (or, tiny, on CPU), with plain transformers.

For a model directory (default: the embedded SmolLM2-135M-Instruct), in one process:

1. quantize it with the best method this machine has without extra wheels: ``torchao-int8`` where
   torchao is importable (carry it to the GPU machine), else ``int8-dynamic`` on CPU, else none
   (recorded as skipped, with the reason);
2. take ``--draft DIR``, or train one with ``distill-draft`` on this device (``--train-steps``);
3. measure every variant on the same prompts, interleaved: greedy tokens/s single and batched,
   time to first token, weights in memory and peak CUDA memory, draft acceptance, and greedy
   agreement with the unquantized model and between + draft and the same target alone.

No vLLM and no TRL needed. Meant to finish in under 5 minutes on an H100/H200 for models up to a
few billion parameters::

    python benchmarks/deploy_gpu.py --model /models/Qwen2.5-1.5B-Instruct --train-steps 300 \
        --out results/deploy_gpu_h200.json
    python benchmarks/deploy_gpu.py --tiny            # CPU smoke run (tests use it)

Writes the JSON (default ``benchmarks/results/deploy_gpu.json``) and prints one summary line.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result


def _peak_cuda_mb(torch: Any) -> float | None:
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="local", help="local, hf:<dir> or a checkpoint directory")
    ap.add_argument("--draft", default=None, help="a draft directory (else one is trained)")
    ap.add_argument("--layers", type=int, default=2, help="draft layers when training one")
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--gen-tokens", type=int, default=96)
    ap.add_argument("--train-prompts", type=int, default=None)
    ap.add_argument("--quant", default="auto", help="auto, torchao-int8, int8-dynamic or none")
    ap.add_argument("--n-prompts", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--draft-tokens", type=int, default=8)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--tiny", action="store_true", help="seconds-long CPU run (for tests)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.tiny:
        args.train_steps, args.gen_tokens, args.train_prompts = 2, 4, 3
        args.n_prompts, args.max_tokens, args.layers = 1, 4, 1

    import torch

    from medverify.deploy.common import read_manifest, resolve_model
    from medverify.deploy.draft import DraftConfig, distill_draft, held_out_prompts
    from medverify.deploy.quantize import quantize
    from medverify.deploy.report import default_prompts, machine_info, make_variants, measure

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="medverify-deploy-gpu-"))
    model_dir = resolve_model(args.model)
    t0 = time.perf_counter()
    method = args.quant
    if method == "auto":
        if cuda and importlib.util.find_spec("torchao") is not None:
            method = "torchao-int8"
        elif not cuda:
            method = "int8-dynamic"
        else:
            method = "none"
    skipped: dict[str, str] = {}
    qdir = None
    if method != "none":
        qdir = work / method
        if not (qdir / "manifest.json").is_file():
            quantize(str(model_dir), method, qdir)
    else:
        skipped["quantized"] = "no quantization library without extra wheels (carry torchao)"
    quant_s = time.perf_counter() - t0
    draft_dir = Path(args.draft) if args.draft else work / "draft"
    if not (draft_dir / "manifest.json").is_file() and not args.draft:
        cfg = DraftConfig(
            layers=args.layers,
            steps=args.train_steps,
            gen_tokens=args.gen_tokens,
            max_prompts=args.train_prompts,
            holdout=max(1, args.n_prompts) if args.train_prompts is None else 1,
            gen_batch=32 if cuda else 8,
        )
        distill_draft(str(model_dir), draft_dir, cfg, device=device)
    train_s = time.perf_counter() - t0 - quant_s
    held = held_out_prompts(draft_dir) if (draft_dir / "manifest.json").is_file() else None
    prompts = (
        [[{"role": "user", "content": p.prompt}] for p in held][: args.n_prompts]
        if held
        else default_prompts(args.n_prompts)
    )
    fp_name = "bf16" if cuda else "fp32"
    variants = make_variants(model_dir, quantized=qdir, draft=draft_dir, method=fp_name)
    for v in variants:
        v.engine.draft_tokens = args.draft_tokens
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    results, gens = measure(variants, prompts, max_new_tokens=args.max_tokens)
    names = [r.name for r in results]
    same_target = {
        f"{n} vs {n.removesuffix(' + draft')}": sum(
            a.text == b.text for a, b in zip(gens[n], gens[n.removesuffix(" + draft")], strict=True)
        )
        for n in names
        if n.endswith(" + draft")
    }
    by = {r.name: r for r in results}
    fp = by[fp_name]
    draft_manifest = read_manifest(draft_dir)
    out = {
        "model": str(model_dir),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "runtime": machine_info(),
        "quant_method": method,
        "skipped": skipped,
        "prompts": len(prompts),
        "max_tokens": args.max_tokens,
        "draft_tokens": args.draft_tokens,
        "quantize_seconds": round(quant_s, 1),
        "draft_seconds": round(train_s, 1),
        "peak_cuda_mb": _peak_cuda_mb(torch),
        "variants": [r.model_dump() for r in results],
        "speedup_vs_fp": {
            r.name: round(r.single_tok_s / fp.single_tok_s, 3) for r in results if fp.single_tok_s
        },
        "identical_to_same_target": same_target,
        "draft": draft_manifest.details,
        "tiny": args.tiny,
    }
    path = write_result("deploy_gpu", out, args.out)
    print(
        f"deploy_gpu on {out['device']}: "
        + "; ".join(
            f"{r.name} {r.single_tok_s:.1f} tok/s, {r.weights_mb:.0f} MB"
            + (f", acceptance {r.acceptance:.2f}" if r.acceptance is not None else "")
            for r in results
        )
        + f"; identical {same_target} -> {path}"
    )
    return out


if __name__ == "__main__":
    main()
