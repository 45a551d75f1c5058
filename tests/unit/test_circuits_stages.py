"""The stage rule on hand-made effects, and the metrics it rests on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import circuits.stages
from circuits.attribution import spearman
from circuits.metrics import rank_stats
from circuits.patching import PatchSource, SiteEffect
from circuits.stages import StageRule, label_stages, minimal_circuit
from genedit.model.components import COMPONENTS, Site


def _effects(mlp: list[float], cross: list[float], logit_drop: float = 0.0) -> list[SiteEffect]:
    out = []
    for layer in range(len(mlp)):
        for comp in COMPONENTS:
            lost = {"mlp": mlp[layer], "cross_attn": cross[layer]}.get(comp, 0.0)
            out.append(SiteEffect(str(Site(layer, comp)), lost, -lost, 0.0, 1.0, -logit_drop * (comp == "mlp") * (layer + 1), 0.0))
    return out


def test_paper_like_profile() -> None:
    mlp = [0.0, 0.01, 0.0, 0.0, 0.05, 0.0, 0.3, 0.6, 0.9]
    cross = [0.0, 0.0, 0.3, 0.5, 0.4, 0.2, 0.1, 0.1, 0.0]
    st = label_stages(_effects(mlp, cross), 9)
    assert st.interaction == [7, 8] and st.interaction_mlps == [7, 8]
    assert st.bridging == [2, 3, 4, 5, 6]
    assert st.priming == [0, 1]
    assert st.measure == "lost_top1"
    assert [st.label(i) for i in (0, 3, 8)] == ["priming", "bridging", "interaction"]


def test_interaction_stage_runs_to_the_top() -> None:
    st = label_stages(_effects([0.0, 0.1, 0.8, 0.7, 0.1], [0.5, 0.1, 0.0, 0.0, 0.0]), 5)
    assert st.interaction_mlps == [2, 3] and st.interaction == [2, 3, 4]
    assert st.bridging == [0, 1] and st.priming == []


def test_floor_and_fallback() -> None:
    weak = label_stages(_effects([0.0, 0.01, 0.015], [0.0, 0.3, 0.0]), 3, StageRule(min_effect=0.02))
    assert weak.interaction == [] and weak.bridging == [1, 2] and weak.priming == [0]
    nothing = label_stages(_effects([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], logit_drop=1.0), 3)
    assert nothing.measure == "logit_diff_drop" and nothing.interaction == [1, 2]  # drops 1, 2, 3: >= 0.5 x 3


def test_rank_stats_ties_count_against_the_relevant_doc() -> None:
    logits = torch.tensor([[1.0, 1.0, 0.0], [3.0, 1.0, 2.0]])
    relevant = torch.tensor([[True, False, False], [False, False, True]])
    st = rank_stats(logits, relevant)
    assert st.rank.tolist() == [1, 1]
    assert st.logit_diff.tolist() == [0.0, -1.0]
    assert torch.allclose(st.logprob, logits.log_softmax(-1)[relevant])


def test_spearman() -> None:
    assert abs(spearman([1, 2, 3, 4], [10, 20, 30, 40]) - 1.0) < 1e-9
    assert abs(spearman([1, 2, 3, 4], [4, 3, 2, 1]) + 1.0) < 1e-9
    assert abs(spearman([1, 2, 2, 3], [1, 3, 2, 4]) - 4.5 / (4.5 * 5) ** 0.5) < 1e-9  # scipy: 0.9487


def _search(monkeypatch: pytest.MonkeyPatch, n_layers: int, needed: set[str], target: float = 0.9):
    """minimal_circuit over a fake model whose Hits@1 is 0.5 while every site in `needed` is live, else 0."""

    def fake_evaluate(runner, encoded, relevant, copies, source, clean, **kw):
        stats = [SimpleNamespace(hits1=0.0 if needed & {str(s) for s in ablated} else 0.5) for ablated in copies]
        return SimpleNamespace(clean=SimpleNamespace(hits1=0.5), patched=stats)

    monkeypatch.setattr(circuits.stages, "evaluate_patches", fake_evaluate)
    runner = SimpleNamespace(cmap=SimpleNamespace(n_layers=n_layers))
    effects = _effects([0.1 * (i + 1) for i in range(n_layers)], [0.05] * n_layers)
    return minimal_circuit(runner, None, None, effects, PatchSource.zero(), None, target=target)  # type: ignore[arg-type]


def test_minimal_circuit_is_met_only_by_a_circuit_smaller_than_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last prefix tried is the unablated model: that it keeps the target says nothing."""
    everything = {str(Site(layer, comp)) for layer in range(2) for comp in COMPONENTS}
    whole = _search(monkeypatch, 2, everything)
    assert whole.n_components == whole.n_total == 6 and whole.kept_hits1 == 1.0
    assert not whole.met
    part = _search(monkeypatch, 2, {"L1.mlp", "L0.cross_attn"})
    assert part.met and sorted(part.sites) == ["L0.cross_attn", "L1.mlp"]
