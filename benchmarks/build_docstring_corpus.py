"""A second real corpus for checking figures off the bundled one: docstrings of networkx and scipy (pydocs builder rules).

python -m benchmarks.build_docstring_corpus OUT_DIR   (about 1,200 documents; 80/20 train/test queries, seeded)
README quotes `genedit bench --data` on it ("A second corpus"): the editing defaults were never tuned on it.
"""
import importlib
import pkgutil
import random
import sys
from pathlib import Path

from genedit.data.beir import write_beir
from genedit.data.default import build as B
from genedit.data.types import Collection, Document, Qrels, Query

mods = {}
for top in ("networkx", "scipy"):
    pkg = importlib.import_module(top)
    mods[top] = pkg
    for info in pkgutil.walk_packages(pkg.__path__, top + "."):
        if any(p in ("tests", "test", "_testing") or p.startswith("_") for p in info.name.split(".")[1:]):
            continue
        with B._silenced():
            try:
                mods[info.name] = importlib.import_module(info.name)
            except Exception:
                pass
docs = list(B.documented_objects(mods))
cfg = B.BuildConfig()
items, cands, dropped = B.select_items(docs, cfg, first_line_fallback=True, min_body_words=cfg.min_body_words)
random.Random(7).shuffle(items)
items = sorted(items[:2000], key=lambda i: i.qualname)
documents = [Document(id=f"b{i:04d}", title=it.qualname, text=B._cap(it.body, cfg.max_doc_chars)) for i, it in enumerate(items)]
queries = {f"q{i:04d}": Query(f"q{i:04d}", it.summary) for i, it in enumerate(items)}
ids = list(queries)
sh = list(ids)
random.Random(0).shuffle(sh)
test = set(sh[: round(len(sh) * 0.2)])
j = {"train": {}, "test": {}}
for i, q in enumerate(ids):
    j["test" if q in test else "train"][q] = {documents[i].id: 1}
c = Collection("scidocs-nx", documents, queries, {k: Qrels(v) for k, v in j.items()})
write_beir(c, Path(sys.argv[1]))
print(len(documents), len(j["train"]), len(j["test"]), sum(len(d.text.split()) for d in documents) / len(documents))
