"""A device-bug detector that needs no GPU: tensors genedit creates must name their device.

On a CPU-only machine a tensor made without `device=` lands where the model is (the CPU), so the bug of issue 21
(row-solve built a mask on the CPU and applied it to CUDA scores) cannot show. `ExplicitDevice` is a torch function
mode that raises when genedit's own code (genedit/, circuits/, benchmarks/) calls a factory function (torch.tensor,
zeros, arange, randperm, ...) without a `device=`: such a tensor lives on the CPU whatever the model's device, which
is a crash on a GPU as soon as it meets a model tensor. A host-side tensor on purpose says `device="cpu"`.
Library code (torch, transformers, tokenizers) is not judged: it is called with tensors already placed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tuple(str(ROOT / name) + "/" for name in ("genedit", "circuits", "benchmarks"))


class MissingDevice(AssertionError):
    """A factory call in genedit's code gave no device."""


class ExplicitDevice(TorchFunctionMode):
    """Raise MissingDevice when genedit's code makes a tensor without saying on which device."""

    def __init__(self, roots: tuple[str, ...] = PACKAGES) -> None:
        super().__init__()
        self.roots = roots
        self.factories = _device_constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105 - torch's protocol
        kwargs = kwargs or {}
        if func in self.factories and kwargs.get("device") is None:
            caller = sys._getframe(1)
            where = caller.f_code.co_filename
            if where.startswith(self.roots):
                raise MissingDevice(f"torch.{func.__name__} without device= at {where}:{caller.f_lineno} ({caller.f_code.co_name})")
        return func(*args, **kwargs)
