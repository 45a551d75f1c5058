"""The stage rule on hand-made effects, and the metrics it rests on."""

from __future__ import annotations

import torch

from circuits.attribution import spearman
from circuits.metrics import rank_stats
from circuits.patching import SiteEffect
from circuits.stages import StageRule, label_stages
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
