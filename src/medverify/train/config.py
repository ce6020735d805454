"""Training configuration: one YAML file describes a whole pipeline of stages.

``medverify train pipeline --config stages.yaml`` (and ``rs-sft`` / ``grpo``, which run the stages
of that kind from the same file) read :class:`PipelineConfig`. Every knob of TRL that we do not
set on purpose stays TRL's; the GRPO improvements Baichuan-M2 reports are :class:`GRPOSwitches`,
each mapped onto TRL's own option where TRL has one (:func:`grpo_args`) and implemented by
:mod:`medverify.train.shaping` / :mod:`medverify.train.trainer` where it does not.

A bad file fails with one line naming the file and the field (``ConfigError``), before any
model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medverify.errors import ConfigError

StageKind = Literal["mid_train", "rs_sft", "grpo", "expert_iteration"]
Task = Literal["rule", "rubric", "consultation"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    """A LoRA adapter (peft); ``None`` in a stage means full fine-tuning."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class TrainSettings(_Strict):
    """Optimizer, batch and device settings shared by every stage kind."""

    max_steps: int = Field(4, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    batch_size: int = Field(4, ge=1, description="per-device train batch size")
    grad_accum: int = Field(1, ge=1)
    seed: int = 0
    use_cpu: bool = False
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU torch threads (default MEDVERIFY_THREADS or all cores); 1 on a busy host",
    )
    bf16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(2, ge=1, description="a resumable checkpoint every N steps")
    lora: LoraSettings | None = Field(default_factory=LoraSettings)
    deepspeed: str | None = Field(None, description="a DeepSpeed JSON config (multi-GPU)")


class GRPOSwitches(_Strict):
    """Baichuan-M2's GRPO improvements, one switch each (DAPO-style defaults).

    Sources: Baichuan-M2 technical report (arXiv:2509.02208, "improved GRPO": no KL, clip-higher,
    token-level loss, dynamic sampling, overlong shaping, conditional length reward); DAPO
    (arXiv:2503.14476) for clip-higher (eps_high 0.28), token-level loss, dynamic sampling and
    soft overlong punishment; Dr. GRPO (arXiv:2503.20783) for the length bias of sequence-level
    normalisation.
    """

    kl: bool = Field(False, description="keep a KL term to the reference model (off: beta=0)")
    kl_beta: float = Field(0.001, gt=0, description="beta when kl is on (DeepSeek-R1's value)")
    clip_higher: bool = Field(True, description="asymmetric clipping: eps_high > eps_low")
    epsilon: float = Field(0.2, gt=0, lt=1)
    epsilon_high: float = Field(0.28, gt=0)
    token_level_loss: bool = Field(True, description="TRL loss_type 'dapo' (else 'grpo')")
    dynamic_sampling: bool = Field(True, description="drop groups whose rewards are all equal")
    overlong_shaping: bool = Field(True, description="DAPO soft overlong punishment")
    overlong_cache: int = Field(8, ge=1, description="tokens before the limit where it starts")
    mask_truncated: bool = Field(False, description="TRL mask_truncated_completions")
    length_reward: bool = Field(True, description="Baichuan-M2 conditional length reward")
    length_percentile: float = Field(0.8, gt=0, lt=1)
    length_threshold: float = Field(0.5, description="group percentile score must exceed this")
    length_weight: float = Field(0.1, ge=0)
    scale_rewards: Literal["group", "batch", "none"] = "group"

    @model_validator(mode="after")
    def _eps(self) -> GRPOSwitches:
        if self.clip_higher and self.epsilon_high < self.epsilon:
            raise ValueError("epsilon_high must be at least epsilon when clip_higher is on")
        return self


class DataSettings(_Strict):
    """Where a stage's prompts come from.

    ``source`` is ``bundled`` (the MCQ items, HealthBench rows and cases shipped in the package)
    or a path (JSONL of MCQ items, a HealthBench file, or a case file/directory, by ``task``).
    """

    source: str = "bundled"
    limit: int | None = Field(None, ge=1)
    eval_limit: int = Field(8, ge=0, description="held-out items for the after-stage eval")
    max_rubric_items: int | None = Field(
        None, ge=1, description="grade only the first N criteria of each rubric (cheap smoke runs)"
    )


class CorpusSource(_Strict):
    """One text corpus of the mid-training mixture."""

    category: Literal["medical", "general", "math"]
    path: str = Field(
        description="'bundled:cases', 'bundled:healthbench', a .txt/.jsonl file or glob"
    )
    text_field: str = "text"


class MidTrainSettings(_Strict):
    """Continued pre-training on a mixture of corpora (streamed, packed)."""

    sources: list[CorpusSource] = Field(
        default_factory=lambda: [
            CorpusSource(category="medical", path="bundled:cases"),
            CorpusSource(category="general", path="bundled:healthbench"),
        ]
    )
    ratio: dict[str, float] = Field(
        default_factory=lambda: {"medical": 2.0, "general": 2.0, "math": 1.0}
    )
    max_length: int = Field(256, ge=16)

    @model_validator(mode="after")
    def _ratio(self) -> MidTrainSettings:
        unknown = set(self.ratio) - {"medical", "general", "math"}
        if unknown:
            raise ValueError(f"unknown ratio categories {sorted(unknown)}")
        if any(v < 0 for v in self.ratio.values()) or not any(self.ratio.values()):
            raise ValueError("ratio weights must be non-negative and not all zero")
        return self


class RSSettings(_Strict):
    """Rejection sampling: k samples per prompt, keep the best at or above the threshold."""

    k: int = Field(4, ge=1)
    threshold: float = 0.5
    temperature: float = Field(1.0, gt=0, le=2.0)
    max_new_tokens: int = Field(64, ge=1)


class ExpertIterationSettings(_Strict):
    """Expert iteration on verifier-guided consultations (:mod:`medverify.train.expert_iteration`).

    Each round the current policy plays ``cases_per_round`` cases, every doctor turn chosen by
    the verifier among ``candidates`` of its own samples; the LoRA (new in the first round, the
    previous round's after) is then trained on that round's kept turns.
    """

    rounds: int = Field(2, ge=1)
    cases_per_round: int = Field(24, ge=1)
    max_turns: int = Field(6, ge=2, description="doctor turns per consultation; the last concludes")
    candidates: int = Field(12, ge=1, description="replies sampled per doctor turn")
    temperature: float = Field(0.8, gt=0, le=2.0)
    top_p: float = Field(0.95, gt=0, le=1.0)
    turn_tokens: int = Field(32, ge=4, description="most tokens of a question turn")
    closing_tokens: int = Field(48, ge=4, description="most tokens of the closing turn")
    search_prompt: str | None = Field(
        "You are a doctor. Reply with one short question to the patient about their symptoms or "
        "history, or say which examination or test you want.",
        description="instructions while sampling question turns (null: the task's own)",
    )
    closing_prefix: str = Field("DIAGNOSIS:", description="the closing turn's forced format")
    plan_prefix: str | None = Field(
        "\nPLAN:", description="starts a plan line after each diagnosis line (null: one stage)"
    )
    plan_samples: int = Field(2, ge=1, description="plan lines sampled per diagnosis line")
    plan_tokens: int = Field(32, ge=4, description="most tokens of a plan line")
    closings_kept: int = Field(
        1, ge=1, description="best distinct closings per consultation offered as targets"
    )
    epochs: float = Field(2.0, gt=0, description="passes over the round's kept rows")


class RolloutSettings(_Strict):
    """Generation settings of GRPO rollouts (single- and multi-turn)."""

    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(32, ge=4)
    temperature: float = Field(1.0, gt=0, le=2.0)
    max_turns: int = Field(3, ge=1, description="doctor turns per consultation (multi-turn)")
    turn_tokens: int = Field(24, ge=4, description="most tokens per doctor turn (multi-turn)")
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_server_base_url: str | None = None


class RewardSettings(_Strict):
    """Which grader scores rubric and consultation rewards, and how rewards are combined."""

    grader: str = Field("local", description="grader spec (medverify.grading.make_grader)")
    grader_concurrency: int = Field(16, ge=1)
    rubric: Literal["core", "generated"] = Field(
        "core", description="consultation rubric: the case's core rubric or a generated one"
    )
    rubric_weight: float = Field(1.0, ge=0)
    process_weight: float = Field(0.5, ge=0, description="weight of process measures")


class StageConfig(_Strict):
    """One stage of the pipeline."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: StageKind
    task: Task | None = Field(None, description="rule | rubric | consultation (rs_sft, grpo)")
    train: TrainSettings = Field(default_factory=TrainSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    mid: MidTrainSettings | None = None
    rs: RSSettings | None = None
    ei: ExpertIterationSettings | None = None
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    grpo: GRPOSwitches = Field(default_factory=GRPOSwitches)
    reward: RewardSettings = Field(default_factory=RewardSettings)

    @model_validator(mode="after")
    def _kind_fields(self) -> StageConfig:
        if self.kind in ("rs_sft", "grpo") and self.task is None:
            raise ValueError(f"a {self.kind} stage needs a task (rule, rubric or consultation)")
        if self.kind == "rs_sft" and self.task == "consultation":
            raise ValueError("rs_sft supports the rule and rubric tasks")
        if self.kind == "grpo":
            gen = self.train.batch_size * self.train.grad_accum
            if gen % self.rollout.num_generations:
                raise ValueError(
                    f"train.batch_size x train.grad_accum ({gen}) must be a multiple of "
                    f"rollout.num_generations ({self.rollout.num_generations})"
                )
        if self.kind == "mid_train":
            self.mid = self.mid or MidTrainSettings()
        if self.kind == "rs_sft":
            self.rs = self.rs or RSSettings()
        if self.kind == "expert_iteration":
            if self.task not in (None, "consultation"):
                raise ValueError("expert_iteration trains the consultation task")
            self.task = "consultation"
            self.ei = self.ei or ExpertIterationSettings()
        return self


class EvalSettings(_Strict):
    """The evaluation run before the first stage and after each one."""

    enabled: bool = True
    cases: int = Field(2, ge=0, description="consultations (consult-bench slice)")
    healthbench: int = Field(2, ge=0, description="HealthBench examples (rubric slice)")
    mcq: int = Field(8, ge=0, description="held-out MCQ items (rule accuracy)")
    grader: str = "local"
    max_rubric_items: int | None = Field(4, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    max_turns: int = Field(3, ge=1)


class PipelineConfig(_Strict):
    """A whole training run: the start model, the stages in order, the evaluation."""

    model: str = Field("local", description="'local' (embedded model) or an HF checkpoint/hub id")
    run_dir: str | None = None
    stages: list[StageConfig] = Field(min_length=1)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineConfig:
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {dup}")
        return self


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_config(data: Any, *, path: str | Path = "<config>") -> PipelineConfig:
    """Validate a loaded mapping as a :class:`PipelineConfig`.

    Raises:
        ConfigError: naming the file and the first bad field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config must be a mapping with 'stages'")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _loc(err["loc"]) or "(top level)"
        raise ConfigError(f"{path} field '{field}': {err['msg']}") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read a YAML (or JSON) training config.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid (file and field named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the training config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({exc})") from None
    return parse_config(data, path=path)


def grpo_args(switches: GRPOSwitches) -> dict[str, Any]:
    """The TRL ``GRPOConfig`` options that our switches map onto (TRL 1.16 names).

    The rest (dynamic sampling, overlong shaping, conditional length reward) has no TRL option
    and lives in :class:`~medverify.train.trainer.VerifierGRPOTrainer` and its reward functions.
    """
    return {
        "beta": switches.kl_beta if switches.kl else 0.0,
        "epsilon": switches.epsilon,
        "epsilon_high": switches.epsilon_high if switches.clip_higher else switches.epsilon,
        "loss_type": "dapo" if switches.token_level_loss else "grpo",
        "mask_truncated_completions": switches.mask_truncated,
        "scale_rewards": switches.scale_rewards,
    }
