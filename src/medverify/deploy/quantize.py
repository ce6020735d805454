"""Weight-only quantization with the field's libraries: ``medverify deploy quantize``.

Baichuan-M2 fits its 32B model on one RTX 4090 through 4-bit weights. Which library does that well
depends on where the model will run, so each method names its target:

=================  ==========  ===========================================  =====================
method             target      library                                      loads with
=================  ==========  ===========================================  =====================
``int8-dynamic``   cpu         torch (``torch.ao`` dynamic int8 Linear)      medverify (this file)
``torchao-int8``   gpu         torchao int8 weight-only (``TorchAoConfig``)   transformers
``torchao-int4``   gpu         torchao int4 weight-only, needs CUDA           transformers
``bnb-int8``       gpu         bitsandbytes LLM.int8, needs CUDA              transformers
``bnb-nf4``        gpu         bitsandbytes NF4, needs CUDA                   transformers
``w8a16``          vllm        llm-compressor, compressed-tensors format     vLLM, transformers
``w4a16``          vllm        llm-compressor, compressed-tensors format     vLLM, transformers
``gguf-q8_0``      llamacpp    llama.cpp's quantizer (llama-cpp-python)       llama.cpp
``gguf-q4_k_m``    llamacpp    llama.cpp's quantizer (llama-cpp-python)       llama.cpp
=================  ==========  ===========================================  =====================

Why ``int8-dynamic`` on CPU: measured on 2 cores with SmolLM2-135M it is the only one that is
*faster* than float32 (22.5 vs 13.0 tok/s, 248 vs 538 MB): its int8 GEMMs run on fbgemm/onednn.
torchao's int8 weight-only, optimum-quanto and bitsandbytes dequantize on the fly on CPU and were
2-5x slower than float32. Its API in ``torch.ao`` is deprecated but still shipped in torch 2.13;
torchao is its successor for GPUs. The saved form is the config and tokenizer plus
``quantized_state.pt`` (the packed int8 state dict), re-created by :func:`load_causal_lm`.

Every method checks its library and hardware *before* loading the model and fails with the fix
(``pip install ...``, or "needs a CUDA GPU"); output is written to a temporary directory that
becomes ``--out`` only when complete.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medverify.backends.local import find_default_gguf
from medverify.backends.torch_runtime import (
    configure_torch_threads,
    dtype_kwarg,
    import_torch,
    quiet_progress_bars,
)
from medverify.deploy.common import (
    MANIFEST,
    DeployManifest,
    atomic_output_dir,
    read_manifest,
    resolve_model,
    tokenizer_fingerprint,
    versions,
    weights_bytes,
    write_manifest,
)
from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: The packed int8 state dict of an ``int8-dynamic`` model.
DYNAMIC_STATE = "quantized_state.pt"


class Method(BaseModel):
    """A quantization method and what it needs."""

    name: str
    target: str
    library: str
    module: str | None  # importable module the method needs (None: torch alone)
    install: str | None  # how to get it
    needs_cuda: bool
    bits: int
    summary: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="int8-dynamic",
            target="cpu",
            library="torch.ao",
            module=None,
            install=None,
            needs_cuda=False,
            bits=8,
            summary="int8 Linear weights, activations quantized per call; fastest on CPU",
        ),
        Method(
            name="torchao-int8",
            target="gpu",
            library="torchao",
            module="torchao",
            install="pip install torchao",
            needs_cuda=False,
            bits=8,
            summary="torchao int8 weight-only; for GPUs (slower than float32 on CPU)",
        ),
        Method(
            name="torchao-int4",
            target="gpu",
            library="torchao",
            module="torchao",
            install="pip install torchao",
            needs_cuda=True,
            bits=4,
            summary="torchao int4 weight-only (tinygemm kernels)",
        ),
        Method(
            name="bnb-int8",
            target="gpu",
            library="bitsandbytes",
            module="bitsandbytes",
            install="pip install bitsandbytes",
            needs_cuda=True,
            bits=8,
            summary="bitsandbytes LLM.int8()",
        ),
        Method(
            name="bnb-nf4",
            target="gpu",
            library="bitsandbytes",
            module="bitsandbytes",
            install="pip install bitsandbytes",
            needs_cuda=True,
            bits=4,
            summary="bitsandbytes 4-bit NormalFloat (QLoRA's format)",
        ),
        Method(
            name="w8a16",
            target="vllm",
            library="llm-compressor",
            module="llmcompressor",
            install="pip install llmcompressor",
            needs_cuda=False,
            bits=8,
            summary="int8 weights in compressed-tensors format, served by vLLM",
        ),
        Method(
            name="w4a16",
            target="vllm",
            library="llm-compressor",
            module="llmcompressor",
            install="pip install llmcompressor",
            needs_cuda=False,
            bits=4,
            summary="int4 weights (group 128) in compressed-tensors format, served by vLLM",
        ),
        Method(
            name="gguf-q8_0",
            target="llamacpp",
            library="llama.cpp",
            module="llama_cpp",
            install="pip install 'medverify[llamacpp]' (compiles llama-cpp-python)",
            needs_cuda=False,
            bits=8,
            summary="GGUF Q8_0 for llama.cpp on CPU; needs a GGUF source",
        ),
        Method(
            name="gguf-q4_k_m",
            target="llamacpp",
            library="llama.cpp",
            module="llama_cpp",
            install="pip install 'medverify[llamacpp]' (compiles llama-cpp-python)",
            needs_cuda=False,
            bits=4,
            summary="GGUF Q4_K_M for llama.cpp on CPU; needs a GGUF source",
        ),
    )
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False without torch)."""
    if not _importable("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def check_method(name: str) -> Method:
    """The method ``name``, after checking that its library and hardware are here.

    Raises:
        ConfigError: unknown method (lists the known ones), missing library (says what to
            install), or no CUDA device for a CUDA-only method.
    """
    method = METHODS.get(name)
    if method is None:
        known = ", ".join(f"{m.name} ({m.target})" for m in METHODS.values())
        raise ConfigError(f"unknown quantization method {name!r}; choose one of: {known}")
    if method.module and not _importable(method.module):
        raise ConfigError(f"method {name} needs {method.library}: {method.install}")
    if method.needs_cuda and not cuda_available():
        raise ConfigError(
            f"method {name} needs a CUDA GPU ({method.library} has no CPU kernels for it); "
            "on CPU use int8-dynamic"
        )
    return method


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """torch.ao's dynamic quantization warns that it is deprecated, on every module it touches."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def quantize_dynamic_int8(model: Any) -> Any:
    """Replace every ``nn.Linear`` of ``model`` (float32, CPU) by a dynamic int8 one, in place."""
    torch, _ = import_torch("deploy")
    with _quiet_deprecations():
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


def quantize_head_int8(model: Any) -> Any:
    """Make ``model``'s LM head a dynamic int8 layer with per-channel weight scales, in place.

    For drafts on CPU: the vocabulary projection is most of a shallow draft's cost. Measured on the
    4-layer SmolLM2 draft (``benchmarks/deploy_cpu.py``): 29 -> 15 ms per token with top-1
    agreement 0.50 -> 0.49, whereas int8 on the decoder layers too (per-tensor or per-channel)
    drops agreement to 0.27. Only the draft is changed, so the output stays the target's.
    """
    torch, _ = import_torch("deploy")
    quant = torch.ao.quantization
    with _quiet_deprecations():
        return quant.quantize_dynamic(
            model, {"lm_head": quant.per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )


class QuantizeResult(BaseModel):
    """What :func:`quantize` wrote."""

    out: Path
    manifest: DeployManifest
    seconds: float


def quantize(
    model: str,
    method: str,
    out: str | Path,
    *,
    gguf_source: str | Path | None = None,
    overwrite: bool = False,
) -> QuantizeResult:
    """Quantize the model a spec names and save it, loadable, with a manifest, into ``out``.

    Args:
        model: ``local``, ``hf:<dir>`` or a checkpoint directory.
        method: a key of :data:`METHODS`.
        out: the directory to create.
        gguf_source: for ``gguf-*`` methods, the GGUF file to requantize (default for ``local``:
            the shipped one).
        overwrite: replace a non-empty ``out``.

    Raises:
        ConfigError: bad method, missing library or GPU, missing model, ``out`` not empty.
    """
    start = time.perf_counter()
    info = check_method(method)
    if info.target == "llamacpp":
        return _quantize_gguf(model, info, Path(out), gguf_source, overwrite, start)
    source = resolve_model(model)
    torch, transformers = import_torch("deploy")
    if not info.needs_cuda:
        configure_torch_threads()
    with atomic_output_dir(out, overwrite=overwrite) as tmp, quiet_progress_bars():
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        details: dict[str, Any] = {"bits": info.bits, "library": info.library}
        if method == "int8-dynamic":
            fp = transformers.AutoModelForCausalLM.from_pretrained(
                source, **{dtype_kwarg(transformers): torch.float32}
            )
            fp.eval()
            qmodel = quantize_dynamic_int8(fp)
            qmodel.config.save_pretrained(tmp)
            qmodel.generation_config.save_pretrained(tmp)
            torch.save(qmodel.state_dict(), tmp / DYNAMIC_STATE)
            details["quantized_modules"] = "torch.nn.Linear (incl. lm_head), per-tensor int8"
        else:
            qmodel = _quantize_with_library(method, source, tmp, torch, transformers, details)
        tokenizer.save_pretrained(tmp)
        manifest = DeployManifest(
            kind="quantized",
            method=method,
            target=info.target,
            source_model=model,
            source_dir=str(source),
            tokenizer_sha256=tokenizer_fingerprint(tokenizer),
            source_bytes=weights_bytes(source),
            output_bytes=weights_bytes(tmp),
            versions=versions(*([info.module] if info.module else [])),
            details=details,
        )
        write_manifest(tmp, manifest)
        del qmodel
    log.info("quantized %s with %s into %s", model, method, out)
    return QuantizeResult(out=Path(out), manifest=manifest, seconds=time.perf_counter() - start)


def _quantize_with_library(
    method: str, source: Path, tmp: Path, torch: Any, transformers: Any, details: dict[str, Any]
) -> Any:
    """The transformers-integrated methods: the saved directory loads with ``from_pretrained``."""
    auto = transformers.AutoModelForCausalLM
    dtype = {dtype_kwarg(transformers): torch.bfloat16 if cuda_available() else torch.float32}
    if method.startswith("torchao-"):
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig

        config = Int8WeightOnlyConfig() if method == "torchao-int8" else Int4WeightOnlyConfig()
        qconf = transformers.TorchAoConfig(config)
        device = {"device_map": "cuda"} if cuda_available() else {}
        model = auto.from_pretrained(source, quantization_config=qconf, **dtype, **device)
        # torchao tensor subclasses are pickled, not safetensors
        model.save_pretrained(tmp, safe_serialization=False)
        return model
    if method.startswith("bnb-"):
        if method == "bnb-int8":
            qconf = transformers.BitsAndBytesConfig(load_in_8bit=True)
        else:
            qconf = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        model = auto.from_pretrained(source, quantization_config=qconf, device_map="cuda")
        model.save_pretrained(tmp)
        return model
    if method in ("w8a16", "w4a16"):
        from llmcompressor import oneshot
        from llmcompressor.modifiers.quantization import QuantizationModifier

        model = auto.from_pretrained(source, **dtype)
        recipe = QuantizationModifier(targets="Linear", scheme=method.upper(), ignore=["lm_head"])
        oneshot(model=model, recipe=recipe)
        model.save_pretrained(tmp, save_compressed=True)
        details["scheme"] = method.upper()
        details["ignore"] = ["lm_head"]
        return model
    raise ConfigError(f"method {method} is not implemented")  # pragma: no cover - table guards


def _quantize_gguf(
    model: str,
    info: Method,
    out: Path,
    gguf_source: str | Path | None,
    overwrite: bool,
    start: float,
) -> QuantizeResult:
    """Requantize a GGUF file with llama.cpp's own quantizer (``llama_model_quantize``)."""
    import ctypes

    import llama_cpp

    if gguf_source is not None:
        src = Path(gguf_source).expanduser()
    elif model.strip() in ("local", "local:transformers", "local:llamacpp"):
        src = find_default_gguf()
    else:
        raise ConfigError(
            f"method {info.name} needs a GGUF source: convert {model} with llama.cpp's "
            "convert_hf_to_gguf.py --outtype f16, then pass --gguf-source FILE"
        )
    if not src.is_file():
        raise ConfigError(f"no such GGUF file: {src}")
    ftype = {
        "gguf-q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "gguf-q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    }[info.name]
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        dst = tmp / "model.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True  # the shipped model is already Q4_1
        rc = llama_cpp.llama_model_quantize(
            str(src).encode(), str(dst).encode(), ctypes.byref(params)
        )
        if rc != 0:
            raise ConfigError(f"llama.cpp could not quantize {src} (code {rc})")
        manifest = DeployManifest(
            kind="quantized",
            method=info.name,
            target=info.target,
            source_model=model,
            source_dir=str(src),
            source_bytes=src.stat().st_size,
            output_bytes=dst.stat().st_size,
            versions=versions("llama_cpp_python"),
            details={"bits": info.bits, "requantized": True},
        )
        write_manifest(tmp, manifest)
    return QuantizeResult(out=out, manifest=manifest, seconds=time.perf_counter() - start)


def _no_init(transformers: Any) -> contextlib.AbstractContextManager[Any]:
    """Skip random initialisation of a model whose weights are loaded next (seconds on CPU)."""
    for where in ("transformers.initialization", "transformers.modeling_utils"):
        with contextlib.suppress(ImportError, AttributeError):
            module = importlib.import_module(where)
            return module.no_init_weights()
    return contextlib.nullcontext()


def is_deploy_dir(path: str | Path) -> bool:
    """Whether ``path`` is an output directory of ``medverify deploy``."""
    return (Path(path).expanduser() / MANIFEST).is_file()


def load_causal_lm(path: str | Path, *, device: str | None = None) -> tuple[Any, Any]:
    """Load a checkpoint, a quantized directory or a draft directory for generation.

    Plain checkpoints and library-quantized directories (their ``config.json`` carries the
    quantization config) load through ``from_pretrained``; ``int8-dynamic`` directories are
    re-created from the config and their packed int8 state dict.

    Returns:
        ``(model, tokenizer)``, the model in eval mode on its device.

    Raises:
        ConfigError: a GGUF directory (serve it with llama.cpp), a quantized directory meant for
            CUDA on a machine without one, or an unreadable checkpoint.
    """
    torch, transformers = import_torch("deploy")
    path = Path(path).expanduser()
    manifest = read_manifest(path) if is_deploy_dir(path) else None
    method = manifest.method if manifest and manifest.kind == "quantized" else None
    if method and method.startswith("gguf-"):
        raise ConfigError(
            f"{path} holds a GGUF model for llama.cpp: serve it with llama.cpp's server "
            "(python -m llama_cpp.server --model model.gguf), not with transformers"
        )
    if method and METHODS.get(method, METHODS["int8-dynamic"]).needs_cuda:
        check_method(method)
    want_cuda = device.startswith("cuda") if device else cuda_available()
    with quiet_progress_bars():
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if method == "int8-dynamic":
            if want_cuda:
                log.warning("%s is int8-dynamic, a CPU format: loading it on the CPU", path)
            config = transformers.AutoConfig.from_pretrained(path)
            with _no_init(transformers):  # every weight is overwritten from the state dict
                model = transformers.AutoModelForCausalLM.from_config(
                    config, **{dtype_kwarg(transformers): torch.float32}
                )
            quantize_dynamic_int8(model.eval())
            with _quiet_deprecations():
                state = torch.load(path / DYNAMIC_STATE, map_location="cpu", weights_only=True)
                model.load_state_dict(state, strict=True)
            model.generation_config = transformers.GenerationConfig.from_pretrained(path)
            return model.eval(), tokenizer
        kwargs: dict[str, Any] = {}
        if method is None:
            dtype = torch.bfloat16 if want_cuda else torch.float32
            kwargs[dtype_kwarg(transformers)] = dtype
        elif want_cuda:
            kwargs["device_map"] = "cuda"
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot load {path}: {first}") from None
    if method is None and want_cuda:
        model.to(device or "cuda")
    return model.eval(), tokenizer
