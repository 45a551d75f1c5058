"""Where a model runs: one rule for every command and API entry point (`--device`, `--dtype`, GENEDIT_DEVICE).

`auto` takes CUDA when torch sees a GPU, else the CPU; under `accelerate launch` / `torchrun` each process takes the
GPU of its LOCAL_RANK. Asking for CUDA where there is none is bad input (ValueError: the CLI exits 2 before anything
is written), not a silent fall back to the CPU.
"""

from __future__ import annotations

import os

import torch

ENV_DEVICE = "GENEDIT_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def local_rank() -> int:
    """This process's rank on its machine under accelerate launch / torchrun (0 when launched alone)."""
    value = os.environ.get("LOCAL_RANK", "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"LOCAL_RANK={value!r} is not an integer") from None


def _no_cuda(spec: str) -> ValueError:
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, but no GPU is visible"
    return ValueError(f"device {spec!r}: CUDA is not available here (torch {torch.__version__} is {build}); use --device cpu or auto")


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The device a command or API call runs on: `spec` (auto|cpu|cuda|cuda:N), else $GENEDIT_DEVICE, else auto.

    A torch.device is taken as it is (accelerate's `cpu:0` too): only names are resolved.
    """
    if isinstance(spec, torch.device):
        return spec
    text = (spec or os.environ.get(ENV_DEVICE) or "auto").strip().lower()
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index_text = text.removeprefix("cuda").removeprefix(":")
        if text.startswith("cuda:") and not index_text.isdigit():
            raise ValueError(f"device {spec!r}: expected cuda:N with N a GPU number")
        if not torch.cuda.is_available():
            raise _no_cuda(text)
        count = torch.cuda.device_count()
        index = int(index_text) if index_text else local_rank()
        if index >= count:
            raise ValueError(f"device {text!r}: this machine has {count} GPU{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    raise ValueError(f"unknown device {spec!r}: expected one of {', '.join(DEVICE_CHOICES)}")


def resolve_dtype(spec: str | torch.dtype | None = None) -> torch.dtype | None:
    """The weight dtype to load a model in: float32 | bfloat16 (None: as saved, which is float32 for genedit's models)."""
    if spec is None or isinstance(spec, torch.dtype):
        return spec
    key = spec.strip().lower()
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {spec!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[key]


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device in bytes (None on the CPU, where memory is not sized from the device)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)
