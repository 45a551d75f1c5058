"""One rank rule everywhere: zero-based, ties count against the relevant document."""

from __future__ import annotations

import math

import torch

from genedit.eval import hits_at, rank_of, rr_at


def test_ties_count_against_the_relevant_document() -> None:
    logits = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0], [0.0, 3.0, 1.0], [5.0, 1.0, 1.0]])
    target = torch.tensor([0, 2, 2, 0])
    assert rank_of(logits, target).tolist() == [1, 2, 1, 0]


def test_mask_ranks_the_best_relevant_document() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    relevant = torch.tensor([[True, False, False, True], [False, True, True, False], [False, False, False, False]])
    # row 0: best relevant 2.0, two others above; row 1: two relevant tie at the top (not against each other);
    # row 2: nothing relevant -> last place (number of non-relevant documents)
    assert rank_of(logits, relevant).tolist() == [2, 0, 4]
    one_hot = torch.nn.functional.one_hot(torch.tensor([3, 1, 0]), 4).bool()
    assert rank_of(logits, one_hot).tolist() == rank_of(logits, torch.tensor([3, 1, 0])).tolist()


def test_mask_broadcasts_over_leading_axes_and_nan_is_last() -> None:
    logits = torch.tensor([[[1.0, 2.0, 2.0]], [[3.0, 2.0, 2.0]]])  # [P=2, B=1, N=3]
    relevant = torch.tensor([[True, False, False]])
    assert rank_of(logits, relevant).tolist() == [[2], [0]]
    assert rank_of(torch.tensor([[math.nan, 0.0, 1.0]]), torch.tensor([0])).tolist() == [2]


def test_hits_and_reciprocal_rank_from_ranks() -> None:
    rank = torch.tensor([0, 1, 9, 10])
    assert hits_at(rank, 1).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert hits_at(rank, 10).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert torch.allclose(rr_at(rank, 10), torch.tensor([1.0, 0.5, 0.1, 0.0]))
