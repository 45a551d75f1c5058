"""Closed-form weight updates of one linear from keys and wanted output changes (MEMIT / AlphaEdit), in float64.

With W [d_out, d_in], edit keys K [d_in, n], wanted output changes R [d_out, n] and the preserved keys' second
moment C = E[k k^T] [d_in, d_in]:
- MEMIT (ridge toward the preserved keys): dW = argmin ||dW K - R||^2 + weight * tr(dW C dW^T)
  = R K^T (K K^T + weight * C)^-1; with weight = lam * N0 for N0 preserved keys this is MEMIT's
  lam * K0 K0^T: each preserved key weighs the same whatever the size of the edit;
- AlphaEdit (null-space projection): P projects onto the eigenvectors of C whose eigenvalue is below
  `threshold` x the largest (directions the preserved keys do not use), and
  dW = R K^T P ((K K^T + Kp Kp^T) P + alpha I)^-1, so dW k = 0 for every preserved key in the span of the kept
  eigenvectors' complement (and Kp, the keys of earlier edits, weigh on the solution as AlphaEdit prescribes).
"""

from __future__ import annotations

import torch

_JITTER = 1e-8  # relative ridge that keeps A invertible when keys span fewer directions than d_in (e.g. ReLU zeros)


def second_moment(keys: torch.Tensor) -> torch.Tensor:
    """Uncentred second moment E[k k^T] [d, d] (float64) of keys [m, d]."""
    k = keys.to(torch.float64)
    return k.T @ k / max(k.shape[0], 1)


def null_space(cov: torch.Tensor, threshold: float) -> torch.Tensor:
    """Projector [d, d] onto the eigenvectors of `cov` whose eigenvalue is < threshold x the largest."""
    values, vectors = torch.linalg.eigh(cov.to(torch.float64))
    keep = vectors[:, values < threshold * values.max().clamp(min=1e-30)]
    return keep @ keep.T


def solve_update(
    keys: torch.Tensor,
    resid: torch.Tensor,
    cov: torch.Tensor,
    weight: float,
    *,
    projector: torch.Tensor | None = None,
    prev_keys: torch.Tensor | None = None,
    alpha: float = 1e-2,
) -> torch.Tensor:
    """The weight change dW [d_out, d_in] for edit keys [n, d_in] and wanted output changes [n, d_out] (see module doc)."""
    if keys.shape[0] != resid.shape[0]:
        raise ValueError(f"{keys.shape[0]} keys but {resid.shape[0]} output changes")
    K = keys.to(torch.float64).T
    R = resid.to(torch.float64).T
    if projector is None:
        A = K @ K.T + weight * cov.to(torch.float64)
        A = A + _JITTER * A.diagonal().mean().clamp(min=1e-30) * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
        return torch.linalg.solve(A, (R @ K.T).T).T  # A is symmetric
    P = projector.to(torch.float64)
    gram = K @ K.T
    if prev_keys is not None and prev_keys.numel():
        Kp = prev_keys.to(torch.float64).T
        gram = gram + Kp @ Kp.T
    A = gram @ P + alpha * torch.eye(P.shape[0], dtype=torch.float64, device=P.device)
    return torch.linalg.solve(A.T, (R @ K.T @ P).T).T
