r"""Build a training-prompt file for ``deploy distill-draft`` from HealthBench and case files.

The bundled 46 prompts are too few for a draft to learn the target's habits (acceptance 0.04 on
CPU after distilling on them). This collects, as one ``{"id", "prompt", "source"}`` JSONL:

- the last user turn of every HealthBench conversation in the given files (deduplicated);
- the patient's opening line, in a sampled persona's words, for every AgentClinic / MediQ case
  (the simulator's own template opening: what a doctor model hears first in a consult-bench run);
- for every raw MediQ / MedQA row (``--mcq``): the question with its lettered options (the rule
  reward's format) and the vignette alone followed by "what is going on and what should be done?".

The bundled prompts are left out, so ``deploy_cpu.py`` can time a draft trained on this file on
prompts it never saw.

    python benchmarks/make_draft_prompts.py --out prompts.jsonl \
        --healthbench ../shared/data/healthbench/*.jsonl \
        --agentclinic ../shared/data/cases/agentclinic_medqa107.jsonl \
        --mediq ../shared/data/cases/mediq_medqa_dev1272.jsonl \
        --mcq ../shared/data/cases/mediq_medqa_dev1272.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medverify.cases.importers import read_cases
from medverify.cases.personas import persona_for
from medverify.deploy.draft import Prompt, bundled_prompts, load_prompts
from medverify.simulator.affective import TemplateAffectiveUnit


def case_openings(source_format: str, path: Path) -> list[Prompt]:
    """The simulated patient's first line for each convertible case in ``path``."""
    unit = TemplateAffectiveUnit()
    prompts = []
    for case in read_cases(source_format, path).cases:
        persona = persona_for(case)
        line = unit.opening_sync(persona, chief_complaint=case.chief_complaint, seed=0)
        prompts.append(Prompt(id=f"case-{case.id}", prompt=line, source=f"{source_format} case"))
    return prompts


def mcq_prompts(path: Path) -> list[Prompt]:
    """Two prompts per raw MediQ row: the lettered question, and the open vignette."""
    prompts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        context = " ".join(row.get("context") or [])
        options = "\n".join(f"{k}. {v}" for k, v in sorted((row.get("options") or {}).items()))
        question = f"{context} {row['question']}".strip()
        prompts.append(Prompt(id=f"mcq-{n}", prompt=f"{question}\n\n{options}", source="MedQA"))
        if context:
            open_q = f"{context} What is going on, and what should be done next?"
            prompts.append(Prompt(id=f"vignette-{n}", prompt=open_q, source="MedQA vignette"))
    return prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--healthbench", type=Path, nargs="*", default=[])
    ap.add_argument("--agentclinic", type=Path, nargs="*", default=[])
    ap.add_argument("--mediq", type=Path, nargs="*", default=[])
    ap.add_argument("--mcq", type=Path, nargs="*", default=[], help="raw MediQ/MedQA JSONL")
    args = ap.parse_args()
    held = {p.prompt.strip() for p in bundled_prompts()}
    seen: set[str] = set()
    rows: list[Prompt] = []
    sources = [(p, None) for p in args.healthbench]
    sources += [(p, "agentclinic") for p in args.agentclinic]
    sources += [(p, "mediq") for p in args.mediq]
    sources += [(p, "mcq") for p in args.mcq]
    for path, fmt in sources:
        if fmt == "mcq":
            found = mcq_prompts(path)
        else:
            found = case_openings(fmt, path) if fmt else load_prompts(path)
        for p in found:
            text = p.prompt.strip()
            if text in held or text in seen:
                continue
            seen.add(text)
            rows.append(p if fmt else p.model_copy(update={"source": "HealthBench"}))
    args.out.write_text("".join(json.dumps(p.model_dump()) + "\n" for p in rows))
    by_source: dict[str, int] = {}
    for p in rows:
        by_source[p.source] = by_source.get(p.source, 0) + 1
    print(f"make_draft_prompts: {len(rows)} prompts {by_source} -> {args.out}")


if __name__ == "__main__":
    main()
