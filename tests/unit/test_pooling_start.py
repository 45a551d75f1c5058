"""A fresh decoder started as pooling ranks like its dense teacher before any training (all three architectures)."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from genedit.data import synthetic_collection
from genedit.model.build import POOLED_GAIN, TINY_ARCHS, base_model, start_as_pooling
from genedit.model.pretrained import mean_pool
from genedit.train.trainer import TrainConfig, fresh_parameters


def _student_and_teacher(arch: str, pooling: bool, gain: float = POOLED_GAIN) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the untrained student and of the dense teacher (mean-pooled encoder states, rows = doc embeddings)."""
    col = synthetic_collection(40, queries_per_doc=2, seed=3)
    model = base_model(f"tiny-{arch}")
    if pooling:
        assert start_as_pooling(model, fresh_parameters(model), gain)
    docs = model.encode([d.text for d in col.documents])
    model.add_documents([d.id for d in col.documents], F.normalize(mean_pool(docs.hidden, docs.mask), dim=-1))
    queries = model.encode([q.text for q, _ in col.split("train")])
    rows = F.normalize(model.docid_rows().detach(), dim=-1)
    teacher = F.normalize(mean_pool(queries.hidden, queries.mask), dim=-1) @ rows.T
    with torch.no_grad():
        return model.scores(queries), teacher


def _top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.argmax(1) == b.argmax(1)).float().mean().item()


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_pooling_start_ranks_as_the_teacher(arch):
    """Random tiny decoders keep a larger share of their own residual stream than MiniLM's: at the trained gain the
    student's scores correlate with the teacher's, and with a large gain its first answer is the teacher's."""
    student, teacher = _student_and_teacher(arch, pooling=True)
    assert torch.corrcoef(torch.stack([student.flatten(), teacher.flatten()]))[0, 1] > 0.95
    assert _top1_agreement(student, teacher) > 0.6
    random_student, _ = _student_and_teacher(arch, pooling=False)
    assert _top1_agreement(random_student, teacher) < 0.2
    exact, teacher = _student_and_teacher(arch, pooling=True, gain=1000.0)
    assert _top1_agreement(exact, teacher) > 0.95


def test_pretrained_cross_attention_is_left_alone(caplog):
    model = base_model("tiny-t5")
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="genedit.model.build"):
        assert not start_as_pooling(model, set())  # nothing fresh: every weight came with the base
    assert "pretrained" in caplog.text
    assert all(torch.equal(v, model.hf.state_dict()[k]) for k, v in before.items())


def test_decoder_init_is_validated():
    with pytest.raises(ValueError, match="decoder_init"):
        TrainConfig(decoder_init="teacher")
    assert TrainConfig().decoder_init == "pooling" and TrainConfig.recipe("plain").decoder_init == "random"
