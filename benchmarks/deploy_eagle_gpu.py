"""Train an EAGLE draft head on a GPU and carry it back as one small archive.

The CPU speculative-decoding benchmark (``deploy_cpu.py``) needs a head trained on thousands of
the target's replies; generating them is minutes on a GPU and days on 2 CPU cores. This runs
:func:`medverify.deploy.eagle_train.train_eagle` on the GPU, then writes ``eagle.tar``: the head's
directory with its tensors in float16 and without the LM rows (the target's own, re-attached by
``load_head(..., target=...)``), so it fits the few MB a lent machine hands back.

    # on the GPU machine (prompts from make_draft_prompts.py); by default the head learns the
    # float32 target's features (what the CPU serves) with two drafting steps unrolled;
    # --init DIR continues from an earlier head
    python benchmarks/deploy_eagle_gpu.py --prompts prompts.jsonl --export OUTDIR
    # back here: unpack, then give it the local target's tokenizer files
    mkdir -p /tmp/eagle && tar -xf OUTDIR/eagle.tar -C /tmp/eagle
    python benchmarks/deploy_eagle_gpu.py --attach /tmp/eagle

``--attach`` is needed because the tokenizer files are written by the GPU machine's
transformers, whose GGUF conversion (5.17) records other special tokens than ours (5.24): the
engine's tokenizer check would rightly refuse the pair although the vocabulary is the same.

Prints one summary line; ``OUTDIR/eagle_gpu.json`` holds the manifest and the card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import time
from pathlib import Path

from medverify.deploy.eagle import load_head, save_head
from medverify.deploy.eagle_train import EagleConfig, train_eagle


def export_head(head_dir: Path, export: Path) -> Path:
    """``export/eagle.tar``: the head's directory, float16 tensors, LM rows left out."""
    import torch

    from medverify.deploy.eagle import CONFIG, WEIGHTS

    head = load_head(head_dir)
    slim = export / "eagle"
    shutil.rmtree(slim, ignore_errors=True)
    shutil.copytree(head_dir, slim, ignore=shutil.ignore_patterns(WEIGHTS, CONFIG))
    save_head(head, slim, lm_rows=False, dtype=torch.float16)
    archive = export / "eagle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(slim, arcname=".")
    shutil.rmtree(slim)
    return archive


def attach(head_dir: Path, target: str = "local") -> None:
    """Replace the head's tokenizer files with the local target's, after checking the vocab."""
    from transformers import AutoTokenizer

    from medverify.deploy.common import (
        read_manifest,
        resolve_model,
        tokenizer_fingerprint,
        write_manifest,
    )

    local = AutoTokenizer.from_pretrained(resolve_model(target))
    carried = AutoTokenizer.from_pretrained(head_dir)
    if local.get_vocab() != carried.get_vocab():
        raise SystemExit(f"{head_dir}: the head was trained for another vocabulary")
    local.save_pretrained(head_dir)
    manifest = read_manifest(head_dir, kind="draft")
    write_manifest(
        head_dir, manifest.model_copy(update={"tokenizer_sha256": tokenizer_fingerprint(local)})
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=Path)
    ap.add_argument("--export", type=Path)
    ap.add_argument("--attach", type=Path, help="an unpacked head: take the local tokenizer")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=192)
    ap.add_argument("--gen-batch", type=int, default=256)
    ap.add_argument("--holdout", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--time-budget", type=float, default=240.0)
    ap.add_argument("--max-prompts", type=int)
    ap.add_argument("--unroll", type=int, default=2, help="drafting steps simulated in training")
    ap.add_argument(
        "--target-dtype",
        default="float32",
        choices=["auto", "float32"],
        help="float32: teach the head the features of the float32 target the CPU serves",
    )
    ap.add_argument("--init", type=Path, help="continue training this head (e.g. a carried one)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--work", type=Path, default=Path("/tmp/medverify-eagle-gpu"))
    args = ap.parse_args()
    if args.attach:
        attach(args.attach)
        print(f"deploy_eagle_gpu: {args.attach} now carries the local target's tokenizer")
        return
    if not (args.prompts and args.export):
        ap.error("give --prompts and --export (or --attach)")
    import torch

    t0 = time.perf_counter()
    cuda = torch.cuda.is_available()
    config = EagleConfig(
        layers=args.layers,
        vocab=args.vocab,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        noise=args.noise,
        gen_tokens=args.gen_tokens,
        gen_batch=args.gen_batch,
        holdout=args.holdout,
        max_prompts=args.max_prompts,
        time_budget_s=args.time_budget,
        eval_every=args.eval_every,
        unroll=args.unroll,
        target_dtype=args.target_dtype,
    )
    result = train_eagle(
        "local",
        args.work / "eagle",
        config,
        prompts_file=args.prompts,
        run_dir=args.work / "replies",
        overwrite=True,
        on_progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True),
        device="cuda" if cuda else "cpu",
        init=args.init,
    )
    args.export.mkdir(parents=True, exist_ok=True)
    archive = export_head(result.out, args.export)
    card = torch.cuda.get_device_name(0) if cuda else "cpu"
    d = result.manifest.details
    (args.export / "eagle_gpu.json").write_text(
        json.dumps(
            {
                "benchmark": "deploy_eagle_gpu",
                "card": card,
                "manifest": result.manifest.model_dump(),
                "archive_bytes": archive.stat().st_size,
            },
            indent=1,
        )
    )
    print(
        f"deploy_eagle_gpu on {card}: {d['layers']}-layer head, {d['vocab_kept']} tokens "
        f"(held-out coverage {d['held_out_vocab_coverage']}), {d['reply_tokens']} reply tokens in "
        f"{d['collect_seconds']} s, {d['steps_done']} steps in {d['train_seconds']} s, held-out "
        f"agreement {d['held_out_agreement_before']} -> {d['held_out_agreement_after']}, "
        f"{archive.stat().st_size / 1e6:.1f} MB -> {archive}"
    )


if __name__ == "__main__":
    main()
