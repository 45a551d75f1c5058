"""Devices without a GPU: resolving --device / GENEDIT_DEVICE, refusing CUDA where there is none, and catching tensors
made off the model's device (the class of bug that crashed row-solve on CUDA) on the CPU alone."""

from __future__ import annotations

import pytest
import torch
from device_guard import ExplicitDevice, MissingDevice
from edit_support import TARGETS, edit_model

from genedit.cli import main
from genedit.data import synthetic_collection
from genedit.data.beir import write_beir
from genedit.data.types import Document
from genedit.edit import Editor, methods_for
from genedit.model.build import SHAPES, base_model, tiny_model
from genedit.model.device import resolve_device, resolve_dtype
from genedit.model.genir import GenIRModel

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of CUDA on a machine without it")


# --- resolving devices ---------------------------------------------------------------------------
def test_auto_and_cpu_resolve_to_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GENEDIT_DEVICE", raising=False)
    assert resolve_device(None) == resolve_device("auto") == resolve_device("CPU") == torch.device("cpu")


def test_auto_takes_the_gpu_of_this_process_under_a_launcher(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("GENEDIT_DEVICE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="4 GPUs"):
        resolve_device("cuda:4")


def test_the_environment_sets_the_default_and_an_explicit_device_wins(monkeypatch):
    monkeypatch.setenv("GENEDIT_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda", 0)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0"])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(ValueError, match="device"):
        resolve_device(spec)


def test_dtypes():
    assert resolve_dtype(None) is None and resolve_dtype("bfloat16") is torch.bfloat16 and resolve_dtype("float32") is torch.float32
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16")


@no_cuda
def test_asking_for_cuda_without_it_is_one_line_and_exit_2(tmp_path, capsys):
    data = tmp_path / "data"
    write_beir(synthetic_collection(8, queries_per_doc=1, seed=0), data)
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(out), "--base", "tiny-t5", "--epochs", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0] and "--device cpu" in err[0]
    assert not out.exists()
    with pytest.raises(ValueError, match="CUDA"):
        base_model("tiny-t5", device="cuda:0")


@no_cuda
def test_edit_commands_refuse_cuda_before_touching_the_model(tmp_path, capsys):
    folder = tmp_path / "m"
    tiny_model("t5", ["a", "b"]).save(folder)
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert main(["delete", "--model", str(folder), "--ids", "a", "--device", "cuda:0"]) == 2
    assert "CUDA" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files


# --- tensors made where the model lives ---------------------------------------------------------------
def test_the_guard_catches_a_tensor_made_without_a_device():
    """What row-solve did before issue 21 (`owner = torch.tensor([...])`, then a mask of it over CUDA scores)."""
    code = compile("owner = torch.tensor([0, 0, 1])\n", str(__import__("genedit").__file__), "exec")
    with ExplicitDevice(), pytest.raises(MissingDevice, match="torch.tensor without device="):
        exec(code, {"torch": torch})
    with ExplicitDevice():
        exec(compile("owner = torch.tensor([0, 0, 1], device='cpu')\n", str(__import__("genedit").__file__), "exec"), {"torch": torch})


EDITS = [(op, m) for op in ("add", "delete", "update") for m in methods_for(op)]


@pytest.mark.parametrize("op,method", EDITS)
def test_every_edit_method_makes_its_tensors_on_the_models_device(op, method, collection):
    """Each method's add/delete/update under the guard: on a GPU, a tensor made without device= meets CUDA weights.

    Tiny random models' rows are not sentence embeddings (classic DSI), so rank-one starts from row-solve's rows here:
    the path that crashed on the GPU.
    """
    model = edit_model("t5", collection)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    new = collection.documents[20:22]
    with ExplicitDevice():
        if op == "add":
            ed.add(new, method=method)
        elif op == "delete":
            ed.delete(["d001"], method=method)
        else:
            ed.update([Document("d002", "new title", "an entirely new text about sailing boats. it has two sentences.")], method=method)
        ed.undo()


def test_localize_makes_its_tensors_on_the_models_device(collection):
    from circuits import LocalizeConfig, localize

    model = edit_model("t5", collection, n=24)
    with ExplicitDevice():
        localize(model, collection, LocalizeConfig(split="train", n_queries=12, lens_queries=4))


def test_training_makes_its_tensors_on_the_models_device():
    from genedit.train.trainer import TrainConfig, train

    model = base_model("tiny-t5")
    with ExplicitDevice():
        train(model, synthetic_collection(12, queries_per_doc=1, seed=0), TrainConfig(max_epochs=2, distill_epochs=1))


# --- bfloat16 --------------------------------------------------------------------------------------
def test_bfloat16_loading_ranks_and_edits(collection, tmp_path):
    model = edit_model("t5", collection)
    model.save(tmp_path / "m")
    narrow = GenIRModel.load(tmp_path / "m", dtype="bfloat16")
    assert narrow.dtype is torch.bfloat16
    queries = [q.text for q in collection.queries.values()][:10]
    wide, half = model.rank(queries, k=5), narrow.rank(queries, k=5)
    assert sum(wide.ranking[q][0] == half.ranking[q][0] for q in wide.ranking) >= 7
    before = narrow.fingerprint()
    ed = Editor(narrow, corpus=collection, targets=TARGETS)
    ed.add(collection.documents[20:22], method="rank-one")
    ed.delete(["d001"], method="rank-one")
    ed.undo()
    ed.undo()
    assert narrow.fingerprint() == before and narrow.dtype is torch.bfloat16


# --- shapes and lengths ------------------------------------------------------------------------------
def test_the_t5_large_shape_has_t5_larges_dimensions():
    spec = SHAPES["t5-large"]
    assert (spec.n_layers, spec.d_model, spec.n_heads, spec.d_ff, spec.d_kv) == (24, 1024, 16, 4096, 64)


@pytest.mark.parametrize("base", ["tiny-bert2bert", "tiny-bart", "tiny-t5"])
def test_tiny_bases_train_with_the_default_recipe(base, tmp_path, capsys):
    """tiny-bert2bert has 128 positions and the default recipe embeds 256-token rows: the rows are capped at 128."""
    data = tmp_path / "data"
    write_beir(synthetic_collection(10, queries_per_doc=1, seed=0, doc_len=300), data)  # rows longer than 128 tokens
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--base", base, "--epochs", "1", "--device", "cpu"]) == 0, capsys.readouterr().err
    saved = GenIRModel.load(tmp_path / "m")
    limit = 128 if base != "tiny-t5" else 256
    assert saved.meta["train"]["config"]["row_tokens"] == limit



def test_a_torch_device_is_taken_as_it_is():
    """accelerate's processes name the CPU `cpu:0`: moving a model there must work (data-parallel training does it)."""
    assert resolve_device(torch.device("cpu", 0)) == torch.device("cpu", 0)
    model = tiny_model("t5", ["a"]).to(torch.device("cpu", 0))
    assert model.device.type == "cpu"


def test_edit_and_statistics_batches_follow_free_memory_by_localizes_rule(collection, monkeypatch):
    """One sizing rule (circuits.patching.patch_rows): the CPU keeps its batch sizes, a GPU's free memory sizes them."""
    import circuits.patching as patching
    from genedit.edit import activations

    model = edit_model("t5", collection)
    assert activations.batch_rows(model, 48, activations.READ_ROWS) == 256  # the CPU: as before
    assert activations.batch_rows(model, 48, activations.ENCODE_ROWS) == 64
    per_row = patching.row_bytes(model, 48, 4)
    gib = 2**30
    sizes = [activations.batch_rows(model, 48, 256, free_bytes=f) for f in (gib // 8, gib, 8 * gib, 80 * gib)]
    assert sizes[0] == max(64, int(0.4 * gib // 8 // per_row)) and sizes == sorted(sizes) and sizes[0] < sizes[-1] <= 8192
    assert sizes[-1] == min(8192, patching.ROW_BUDGET // per_row)  # at most ROW_BUDGET bytes of activations
    monkeypatch.setattr(patching, "free_memory_bytes", lambda device: gib)  # what torch.cuda.mem_get_info would say on a GPU
    assert activations.batch_rows(model, 48, 256) == sizes[1]
    seen = []
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **kw: seen.append(kw["batch_size"]) or real(texts, **kw))
    activations.prepare(model, ["a query", "another query"], max_length=48)
    assert seen == [sizes[1]]  # an edit's batch (prepare) sized the same way
