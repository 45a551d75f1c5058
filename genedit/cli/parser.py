"""The argument parser of the genedit command: every subcommand, its options, and the function that runs it."""

from __future__ import annotations

import argparse

from genedit.cli.bench import cmd_bench, cmd_check
from genedit.cli.demo import cmd_demo
from genedit.cli.edit import cmd_add, cmd_delete, cmd_log, cmd_rollback, cmd_update
from genedit.cli.localize import cmd_localize
from genedit.cli.serve import add_serve_parser
from genedit.cli.train import cmd_baseline, cmd_eval, cmd_train
from genedit.model.storage import default_model_dir


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 0.5], got {text}")
    return value


def _device_options(p: argparse.ArgumentParser, dtype: bool = False) -> None:
    """--device (every command that runs a model) and, where weights may be narrowed, --dtype."""
    from genedit.model.device import DTYPES, ENV_DEVICE

    p.add_argument("--device", help=f"auto (default: CUDA when there is a GPU, else the CPU), cpu, cuda or cuda:N; ${ENV_DEVICE} sets the default")
    if dtype:
        p.add_argument("--dtype", choices=list(DTYPES), help="weights' dtype (default: as saved, float32); bfloat16 halves a GPU's memory")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the genedit command."""
    from genedit.train.trainer import RECIPES, TrainConfig

    p = argparse.ArgumentParser(prog="genedit", description="Edit the corpus of a generative retrieval model without retraining it.",
                                epilog="exit codes: 0 ok, 1 a finding, 2 bad input, 3 internal error, 4 a conflict with another writer of the model folder (its lock; see --wait)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GenIR model (DSI recipe) on a BEIR folder or 'default'")
    t.add_argument("--data", required=True, help="BEIR folder, 'default', or irds:<id>")
    t.add_argument("--out", required=True, help="model directory to write (must not exist or be empty)")
    t.add_argument("--base", default="minilm", help="'minilm' (offline default), 'tiny-t5|tiny-bart|tiny-bert2bert', or an HF t5/bart id")
    t.add_argument("--epochs", type=_positive_int, default=TrainConfig.max_epochs, help="epoch bound (early stopping on dev may end sooner)")
    t.add_argument("--minutes", type=_positive_float, help="optional wall-clock cap; a capped run is not reproducible")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--recipe", choices=list(RECIPES), default="default",
                   help="default: the decoder starts as the dense teacher, rows = sentence embeddings, trains on each document's distinct text "
                        "(boilerplate dropped); distinct: the same (its name while opt-in); plain: the default before issue 9 (random decoder start, "
                        "text as written); dsi: classic DSI (random rows, no teacher)")
    t.add_argument("--overwrite", action="store_true")
    _device_options(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a model: hits@1/5/10, mrr@10")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--json", help="write the measures to this JSON file")
    e.add_argument("--run", help="write the TREC run file here")
    _device_options(e, dtype=True)
    e.set_defaults(func=cmd_eval)

    from genedit.baselines import baseline_names

    b = sub.add_parser("baseline", help="evaluate a baseline: dense (MiniLM + faiss), tfidf or bm25 (bm25s)")
    b.add_argument("name", choices=baseline_names())
    b.add_argument("--data", required=True)
    b.add_argument("--split", default="test")
    b.add_argument("--json")
    b.set_defaults(func=cmd_baseline)

    lo = sub.add_parser("localize", help="localize the retrieval circuit of a model")
    lo.add_argument("--model", required=True)
    lo.add_argument("--data", required=True)
    lo.add_argument("--out", required=True, help="circuit JSON to write")
    lo.add_argument("--plots", help="folder for heatmaps and summary.md")
    lo.add_argument("--queries", type=_positive_int, help="queries to analyse (default 500)")
    lo.add_argument("--split", help="query split (default train)")
    lo.add_argument("--compare", metavar="CIRCUIT", help="repeat this circuit's localization (its settings) and exit 1 if any field but wall times differs")
    _device_options(lo, dtype=True)
    lo.set_defaults(func=cmd_localize)

    d = sub.add_parser("demo", help="train (or reuse) the default model, compare with baselines, localize, edit a copy")
    d.add_argument("--epochs", type=_positive_int, default=TrainConfig.max_epochs, help="epoch bound of the default model's training")
    d.add_argument("--minutes", type=_positive_float, help="optional wall-clock cap on training (not reproducible)")
    d.add_argument("--retrain", action="store_true")
    d.add_argument("--model-dir", help=f"where the default model is cached (default {default_model_dir()})")
    d.add_argument("--json")
    d.add_argument("--out", help="folder for the circuit and its report")
    d.add_argument("--queries", type=_positive_int, default=500)
    d.add_argument("--no-localize", action="store_true")
    d.add_argument("--no-edit", action="store_true", help="skip the edit story (add, delete, gate, rollback on a copy of the model)")
    _device_options(d)
    d.set_defaults(func=cmd_demo)

    _add_edit_parsers(sub)
    add_serve_parser(sub)

    be = sub.add_parser("bench", help="editing benchmark: add/delete/update/sequential protocols vs retrain oracle and baselines")
    be.add_argument("--data", required=True, help="BEIR folder, 'default', or irds:<id> (needs test queries)")
    be.add_argument("--protocol", required=True, help="add, delete, update, sequential, a comma-separated list, or all")
    be.add_argument("--methods", help="comma-separated editing methods (default: every method registered for the op; row always runs); "
                    "METHOD@TARGETS runs a circuit method on one editing-target selection of the circuit (auto, cross_attn, mlp, both), e.g. rank-one@mlp")
    be.add_argument("--out", required=True, help="output folder: absent, empty, or an earlier bench output (its models are reused)")
    be.add_argument("--base", default="minilm", help="base model of the base and oracle models (tiny-t5 for a smoke run)")
    be.add_argument("--seed", type=int, default=0, help="seed of the splits and of training")
    be.add_argument("--fraction", type=_fraction, help="share of documents edited by add/delete/update (default 0.1/0.1/0.05)")
    be.add_argument("--edits", type=_positive_int, help="length of the sequential stream (default 1000, or as many as a smaller corpus can take)")
    be.add_argument("--every", type=_positive_int, help="measure the stream after every N edits (default 100; a tenth of a stream shortened to fit the corpus)")
    be.add_argument("--epochs", type=_positive_int, help=f"epoch bound of base and oracle training (default {TrainConfig.max_epochs})")
    be.add_argument("--baselines", help="comma-separated baselines on the edited corpus (default dense,tfidf,bm25; empty for none)")
    be.add_argument("--recipe", choices=list(RECIPES), default="default",
                    help="training recipe of base and oracle models (plain: the default before issue 9; dsi: classic DSI, rows not sentence embeddings)")
    be.add_argument("--quick", action="store_true", help="smoke run: --edits 20 --every 10 --epochs 2 --baselines tfidf,bm25 unless given")
    _device_options(be, dtype=True)
    be.set_defaults(func=cmd_bench)

    c = sub.add_parser("check", help="regression gate: exit 1 if a model drops a measure of a reference by more than allowed")
    c.add_argument("--model", required=True, help="candidate model folder")
    c.add_argument("--reference", required=True, help="a model folder, a `genedit eval --json` file or a TREC run")
    c.add_argument("--data", required=True)
    c.add_argument("--split", default="test")
    c.add_argument("--max-drop", help="allowed drops, e.g. hits@1=0.005,hits@10=0.01 (defaults: hits@1 0.005, hits@5 0.01, hits@10 0.01, mrr@10 0.005)")
    c.add_argument("--json", help="write the verdict, measures and lost queries to this JSON file")
    _device_options(c, dtype=True)
    c.set_defaults(func=cmd_check)
    return p




WAIT_HELP = "wait up to this long for another writer of the model folder to finish (default 0: refuse at once, exit 4)"


def _add_edit_parsers(sub: argparse._SubParsersAction) -> None:
    """Register add / delete / update / log / rollback on the genedit command."""
    from circuits.artifact import EDIT_SELECTIONS
    from genedit.edit.context import EditSettings
    from genedit.edit.methods import methods_for

    def common(p: argparse.ArgumentParser, op: str) -> None:
        p.add_argument("--model", required=True, help="model folder (edited in place unless --out)")
        p.add_argument("--method", choices=methods_for(op), help=f"editing method (default {methods_for(op)[0]})")
        p.add_argument("--out", help="write the edited model to this new folder instead")
        p.add_argument("--data", help="the corpus the model indexes (BEIR folder or 'default'); default: what it was trained on")
        p.add_argument("--targets", default=EditSettings.targets, choices=EDIT_SELECTIONS, help="which circuit components circuit methods edit")
        p.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS", help=WAIT_HELP)
        _device_options(p, dtype=True)

    a = sub.add_parser("add", help="add documents (BEIR corpus lines) to a model")
    a.add_argument("--docs", required=True, help="JSONL of documents: {\"_id\", \"title\", \"text\"} per line ('-': standard input)")
    a.add_argument("--queries", help="JSONL of queries for them: {\"doc\": id, \"text\": query} per line ('-': standard input)")
    common(a, "add")
    a.set_defaults(func=cmd_add)

    d = sub.add_parser("delete", help="delete documents from a model")
    d.add_argument("--ids", nargs="+", help="document ids")
    d.add_argument("--ids-file", help="file with one document id per line ('-': standard input)")
    common(d, "delete")
    d.set_defaults(func=cmd_delete)

    u = sub.add_parser("update", help="give indexed documents new text (same ids)")
    u.add_argument("--docs", required=True, help="JSONL of the documents' new text ('-': standard input)")
    u.add_argument("--queries", help="JSONL of queries for the new text: {\"doc\": id, \"text\": query} per line ('-': standard input)")
    common(u, "update")
    u.set_defaults(func=cmd_update)

    lg = sub.add_parser("log", help="list a model's edits")
    lg.add_argument("--model", required=True)
    lg.add_argument("--format", choices=("text", "json"), default="text", help="json: the whole journal metadata")
    lg.set_defaults(func=cmd_log)

    r = sub.add_parser("rollback", help="restore a model to journal entry N (0 = before the first edit)")
    r.add_argument("--model", required=True)
    r.add_argument("--to", required=True, type=int, help="journal entry to return to (see genedit log)")
    r.add_argument("--out", help="write the restored model to this new folder instead")
    r.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS", help=WAIT_HELP)
    _device_options(r)
    r.set_defaults(func=cmd_rollback)
