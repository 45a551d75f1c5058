"""Circuit artifact: JSON round trip, fingerprint check, editing targets, report files, encoder swap errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from circuits.artifact import SCHEMA_VERSION, Circuit, CircuitMismatchError, shipped_circuit_path
from circuits.localize import LocalizeConfig, localize
from circuits.report import summary_markdown, write_report
from circuits.stages import StageRule
from circuits.swap import SwapError, encoder_swap
from genedit.data import synthetic_collection
from genedit.data.types import Collection
from genedit.model.build import TinySpec, tiny_model
from genedit.model.genir import GenIRModel


@pytest.fixture(scope="module")
def collection() -> Collection:
    return synthetic_collection(n_docs=16, queries_per_doc=2, seed=0)


@pytest.fixture(scope="module")
def model(collection: Collection) -> GenIRModel:
    return tiny_model("bert2bert", collection.doc_ids, TinySpec(n_layers=3, seed=0))


@pytest.fixture(scope="module")
def circuit(model: GenIRModel, collection: Collection) -> Circuit:
    # a random tiny model ranks few queries first: floor 0 so that stages are labelled from whatever moves
    config = LocalizeConfig(split="train", n_queries=24, lens_queries=4, batch_size=8, max_rows=128, stage_rule=StageRule(min_effect=0.0))
    return localize(model, collection, config)


def test_round_trip(circuit: Circuit, model: GenIRModel, tmp_path: Path) -> None:
    path = circuit.save(tmp_path / "sub" / "circuit.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["fingerprint"] == model.fingerprint()
    loaded = Circuit.load(path, model=model)
    assert loaded.to_json() == circuit.to_json()
    assert loaded.effects[0] == circuit.effects[0]
    assert loaded.stages.interaction == circuit.stages.interaction
    assert loaded.lens is not None and loaded.lens.words[0].top_words == circuit.lens.words[0].top_words  # type: ignore[union-attr]
    assert len(loaded.effects) == 3 * 3 + 2 * 3 * 4  # components + self/cross heads of 3 layers x 4 heads
    assert summary_markdown(loaded) == summary_markdown(circuit)


def test_fingerprint_mismatch_raises(circuit: Circuit, collection: Collection, tmp_path: Path) -> None:
    path = circuit.save(tmp_path / "circuit.json")
    other = tiny_model("bert2bert", collection.doc_ids, TinySpec(n_layers=3, seed=1))
    with pytest.raises(CircuitMismatchError, match="re-run localization"):
        Circuit.load(path, model=other)
    Circuit.load(path)  # without a model, no check


def test_newer_schema_and_foreign_json_rejected(circuit: Circuit, tmp_path: Path) -> None:
    data = json.loads(circuit.to_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="newer"):
        Circuit.load(tmp_path / "new.json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a genedit circuit"):
        Circuit.load(tmp_path / "foreign.json")


def _with_effects(circuit: Circuit, lost: dict[str, float], bridging: list[int], interaction: list[int]) -> Circuit:
    """A copy of `circuit` whose sites lose rank 1 as given (others 0) and whose stages are as given."""
    out = copy.deepcopy(circuit)
    for e in out.effects:
        e.lost_top1 = lost.get(e.site, 0.0)
        e.delta_logit_diff = -lost.get(e.site, 0.0)
    out.stages.bridging, out.stages.interaction = bridging, interaction
    return out


def test_editing_targets_follow_the_measured_effects(circuit: Circuit) -> None:
    """Edits go where retrieval measurably is: by effect, within the bridging and interaction layers, bottom-up."""
    c = _with_effects(circuit, {"L2.cross_attn": 0.35, "L1.cross_attn": 0.12, "L2.mlp": 0.06, "L0.mlp": 0.9}, [1], [2])
    assert [str(s) for s in c.editing_targets()] == ["L1.cross_attn", "L2.cross_attn"]  # L2.mlp < 0.25 x 0.35; L0 is no stage
    assert [str(s) for s in c.editing_targets("cross_attn")] == ["L1.cross_attn", "L2.cross_attn"]
    assert [str(s) for s in c.editing_targets("mlp")] == ["L2.mlp"]
    assert [str(s) for s in c.editing_targets("both")] == ["L1.cross_attn", "L2.cross_attn", "L2.mlp"]
    paper = _with_effects(circuit, {"L2.mlp": 0.5, "L1.mlp": 0.2, "L2.cross_attn": 0.05}, [1], [2])  # T5-large's shape
    assert [str(s) for s in paper.editing_targets()] == ["L1.mlp", "L2.mlp"]
    with pytest.raises(ValueError, match="unknown editing-target selection"):
        c.editing_targets("heads")


def test_report_files(circuit: Circuit, tmp_path: Path) -> None:
    paths = write_report(circuit, tmp_path / "report")
    names = sorted(p.name for p in paths)
    assert names == ["components.png", "heads.png", "residual_lens.png", "summary.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    text = (tmp_path / "report" / "summary.md").read_text()
    for needle in ("## Stages", "## Minimal circuit", "post-LN", "priming", "interaction"):
        assert needle in text


def test_settings_and_measures_recorded(circuit: Circuit) -> None:
    assert circuit.settings.n_queries == 24 and circuit.settings.mode == "mean" and circuit.settings.split == "train"
    assert circuit.attribution is not None and -1 <= circuit.attribution.spearman <= 1
    assert all(e.attribution is not None for e in circuit.effects)
    assert circuit.lens is not None and len(circuit.lens.residual) == 3
    assert circuit.minimal is not None and circuit.minimal.n_total == 9


def test_encoder_swap_checks_compatibility(model: GenIRModel, collection: Collection) -> None:
    pairs = collection.split("test")[:6]
    texts, relevant = [q.text for q, _ in pairs], [r for _, r in pairs]
    same = encoder_swap(model, model, texts, relevant)
    assert same.swapped == same.decoder_own == same.encoder_own
    other = tiny_model("bert2bert", collection.doc_ids, TinySpec(n_layers=3, seed=2))
    swapped = encoder_swap(model, other, texts, relevant)
    assert 0 <= swapped.swapped.hits10 <= 1
    with torch.no_grad():
        fewer = tiny_model("bert2bert", collection.doc_ids[:-1], TinySpec(n_layers=3))
    with pytest.raises(SwapError, match="same docids"):
        encoder_swap(model, fewer, texts, relevant)
    wide = tiny_model("bert2bert", collection.doc_ids, TinySpec(n_layers=3, d_model=48, n_heads=4))
    with pytest.raises(SwapError, match="widths differ"):
        encoder_swap(model, wide, texts, relevant)


def test_localize_runs_on_a_t5_whose_heads_are_wider_than_its_residual(collection: Collection) -> None:
    """t5-3b/11b have num_heads * d_kv != d_model: sweep, attribution, lens and circuit search all run."""
    t5 = tiny_model("t5", collection.doc_ids, TinySpec(n_layers=2, d_model=32, n_heads=4, d_kv=16, seed=0))
    config = LocalizeConfig(split="train", n_queries=8, lens_queries=4, batch_size=4, max_rows=64, stage_rule=StageRule(min_effect=0.0))
    found = localize(t5, collection, config)
    assert len(found.effects) == 2 * 3 + 2 * 2 * 4 and found.minimal is not None
    assert found.attribution is not None and found.lens is not None


def test_shipped_and_older_circuits_load_with_a_truthful_minimal_circuit(tmp_path: Path) -> None:
    """`met` means a circuit smaller than the whole decoder kept the target; old artifacts load under that meaning."""
    shipped = Circuit.load(shipped_circuit_path())
    m = shipped.minimal
    assert m is not None and m.met and m.n_components < m.n_total
    assert "NOT" not in summary_markdown(shipped) and "whole decoder" not in summary_markdown(shipped)
    data = json.loads(shipped_circuit_path().read_text())  # an older run whose search ended with the whole decoder
    sites = [f"L{layer}.{comp}" for layer in range(data["n_layers"]) for comp in ("self_attn", "cross_attn", "mlp")]
    data["minimal"].update(sites=sites, n_components=len(sites), hits1=data["minimal"]["full_hits1"], kept_hits1=1.0, met=True)
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Circuit.load(tmp_path / "old.json")
    assert old.minimal is not None and not old.minimal.met
    assert "only the whole decoder" in summary_markdown(old)


def test_settings_repeat_the_localization(circuit: Circuit, model: GenIRModel, collection: Collection) -> None:
    """`LocalizeConfig.matching(settings)` regenerates the artifact (other batch sizes: batching changes nothing)."""
    config = LocalizeConfig.matching(circuit.settings)
    assert (config.batch_size, config.max_rows) != (8, 128) and config.stage_rule.min_effect == 0.0
    assert localize(model, collection, config).differences(circuit) == []


def test_differences_name_the_changed_fields(circuit: Circuit) -> None:
    other = copy.deepcopy(circuit)
    other.timings.total += 100.0  # wall times never count
    other.effects[3].lost_top1 += 0.5
    other.interaction_mlps = [*other.interaction_mlps, 99]
    other.fingerprint = "0" * 16
    diff = circuit.differences(other)
    assert any(d.startswith("effects[3].lost_top1:") for d in diff)
    assert any(d.startswith("interaction_mlps:") for d in diff)
    assert any(d.startswith("fingerprint:") for d in diff)
    assert not any(d.startswith("timings") for d in diff)
    other = copy.deepcopy(circuit)
    other.clean.logprob *= 1 + 1e-9  # float noise within tolerance
    assert circuit.differences(other) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "genedit.circuit", "schema_version": 1}', "Circuit lacks fingerprint"),
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a genedit circuit artifact"),
    ],
)
def test_malformed_artifacts_get_a_clear_error_naming_the_file(circuit: Circuit, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as exc:
        Circuit.load(path)
    assert str(path) in str(exc.value)
    data = json.loads(circuit.to_json())
    data["clean"] = "oops"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="PatchStats: expected an object"):
        Circuit.load(path)
