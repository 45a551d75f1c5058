"""Circuit localization for GenIR models: patching, attribution, logit lens, stages, minimal circuit, reports."""

from circuits.artifact import Circuit, CircuitMismatchError, ReferenceCheck, reference_check, shipped_circuit_path
from circuits.localize import LocalizeConfig, localize
from circuits.patching import PatchSource, SiteEffect, sweep
from circuits.report import summary_markdown, write_report
from circuits.runner import Runner
from circuits.swap import SwapError, encoder_swap

__all__ = [
    "Circuit",
    "CircuitMismatchError",
    "LocalizeConfig",
    "PatchSource",
    "ReferenceCheck",
    "Runner",
    "SiteEffect",
    "SwapError",
    "encoder_swap",
    "localize",
    "reference_check",
    "shipped_circuit_path",
    "summary_markdown",
    "sweep",
    "write_report",
]
