"""Data-parallel training on 2 CPU processes (gloo, started by torchrun): the same weights as one process, one writer.

Each launch costs a few seconds of process start-up; the models are tiny, so the whole file takes about half a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from genedit.data import synthetic_collection, write_beir
from genedit.model.build import base_model
from genedit.model.genir import GenIRModel
from genedit.train.trainer import TrainConfig, train

pytestmark = pytest.mark.acceptance

REPO = Path(__file__).resolve().parents[2]
ATOL = 1e-5  # float tolerance: the two processes' gradients are summed in another order than one process sums them


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 ARGS` with this checkout's genedit, offline."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize("recipe", ["default", "dsi"])
def test_genedit_train_on_two_processes_matches_one_process_and_writes_the_model_once(tmp_path, recipe):
    """`torchrun ... -m genedit train [--recipe dsi]`: each process steps on half of the examples, the weights after one
    epoch are one process's, and the main process alone writes the one model folder. dsi: its random rows are drawn
    alike on every process and its first epoch is a cross-entropy one, not a distillation one."""
    data = tmp_path / "synth"
    # one epoch need not beat the start on a dev split (dsi on tiny-t5 never does; the default recipe starts as its
    # teacher), and then training would restore the start weights; fewer than 10 training queries mean no dev split:
    # the epoch's weights are kept and compared
    collection = synthetic_collection(40, queries_per_doc=2, seed=1, test_fraction=0.9)
    write_beir(collection, data)
    runs = tmp_path / "runs"
    runs.mkdir()
    done = _torchrun(["-m", "genedit", "train", "--data", str(data), "--out", str(runs / "model"), "--base", "tiny-t5", "--epochs", "1", "--recipe", recipe], tmp_path)

    assert done.stdout.count("saved to") == 1 and "on 2 processes" in done.stdout
    assert [p.name for p in runs.iterdir()] == ["model"]  # one folder, no second writer's leftovers
    meta = json.loads((runs / "model" / "genedit.json").read_text())["train"]
    assert meta["processes"] == 2 and meta["config"] == asdict(TrainConfig.recipe(recipe, max_epochs=1))

    one = base_model("tiny-t5")
    result = train(one, collection, TrainConfig.recipe(recipe, max_epochs=1))
    assert result.best_epoch == 0  # the trained epoch's weights are kept, not the start's: the comparison below is not vacuous
    (total,) = result.examples_per_process
    shares = meta["examples_per_process"]
    assert sum(shares) == total and min(shares) >= 0.45 * total  # disjoint halves of the same global batches
    two = GenIRModel.load(runs / "model")
    assert _max_difference(one.hf.state_dict(), two.hf.state_dict()) < ATOL


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from genedit.data import synthetic_collection
    from genedit.model.build import base_model
    from genedit.train.trainer import TrainConfig, processes, train

    out, cfg = sys.argv[1], TrainConfig(**json.loads(sys.argv[2]))
    model = base_model(sys.argv[3])
    with processes(model.device) as state:
        result = train(model, synthetic_collection(30, queries_per_doc=3, seed=2, test_fraction=0.9), cfg)
        torch.save({"state": model.hf.state_dict(), "examples": result.examples_per_process, "loss": result.history[0].loss},
                   f"{out}/rank{state.process_index}.pt")
    """
)


def test_uneven_and_empty_shares_weight_the_global_mean(tmp_path):
    """A DSI epoch (cross-entropy + KL) with an odd batch size and a 1-example batch (one process gets no example):
    weighting each process's mean loss by its share keeps the averaged gradient the global batch's. BERT2BERT: its
    output bias is a parameter that never trains, which DDP must not wait for."""
    arch = "bert2bert"
    collection = synthetic_collection(30, queries_per_doc=3, seed=2, test_fraction=0.9)  # 9 training queries: no dev split
    n_queries = train(base_model(f"tiny-{arch}"), collection, TrainConfig(max_epochs=0)).n_train_queries
    batch = 7
    # 2 * 7 + 1 indexing examples: index batches of 7, 7 and 1
    cfg = TrainConfig(max_epochs=1, distill_epochs=0, batch_size=batch, indexing_ratio=(2 * batch + 1) / n_queries)
    one = base_model(f"tiny-{arch}")
    result = train(one, collection, cfg)
    assert result.best_epoch == 0  # the epoch's weights are kept (no dev split), so comparing them means something
    script = tmp_path / "train_shares.py"
    script.write_text(SCRIPT)
    _torchrun([str(script), str(tmp_path), json.dumps(asdict(cfg)), f"tiny-{arch}"], tmp_path)

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["examples"] == ranks[1]["examples"] and sum(ranks[0]["examples"]) == result.examples_per_process[0]
    assert ranks[0]["loss"] == pytest.approx(result.history[0].loss, rel=1e-5)  # the epoch's loss over the global batches
    assert _max_difference(ranks[0]["state"], ranks[1]["state"]) == 0.0  # DDP keeps the processes identical
    assert _max_difference(one.hf.state_dict(), ranks[0]["state"]) < ATOL
