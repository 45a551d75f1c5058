"""Invariants of the benchmark corpus builders (source files, short docstrings) on tiny fake and real packages."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from benchmarks import build_shortdoc_corpus as short
from benchmarks import build_source_corpus as source
from benchmarks.corpus_common import SplitConfig, package_root, query_leaks
from genedit.data import load_beir
from genedit.data.default.build import write_corpus
from genedit.data.types import Collection

LICENSE = "# Copyright 2024 The Fake Authors.\n# Licensed under the Apache License, Version 2.0.\n"
TOPICS = ["widget files", "gadget caches", "sprocket tables", "gizmo streams", "doohickey trees", "thingamajig logs",
          "whatsit queues", "contraption maps", "apparatus graphs", "mechanism pools", "device registries",
          "instrument buffers"]


def _fake_package(root: Path, name: str) -> None:
    """A package with modules that qualify, and others each rule must drop."""
    pkg = root / name
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for i, topic in enumerate(TOPICS):
        (pkg / f"mod{i:02d}.py").write_text(
            f'{LICENSE}"""Tools for handling {topic} in bulk.\n\nLonger notes about {topic}.\n"""\n'
            f"import os\n\n\ndef load_{i}(path):\n    \"\"\"Read the {topic} stored at a path.\n\n"
            f"    The {topic} are parsed lazily and cached. Errors name the offending line.\n    \"\"\"\n    return os.fspath(path)\n")
    (pkg / "headed.py").write_text(
        f'"""{name}.headed\n~~~~~~~~~~~~\n\nLexers for the Foo language.\n\n:copyright: Copyright 2024 the Fake team.\n'
        ':license: BSD, see LICENSE for details.\n"""\nX = 1\n')
    (pkg / "nolicense.py").write_text('"""Helpers without any legal header at all."""\nY = 2\n')
    (pkg / "leaky.py").write_text(f'{LICENSE}"""Build the leaky index quickly.\n"""\nMSG = "Build the leaky index quickly"\n')
    (pkg / "dup_a.py").write_text(f'{LICENSE}"""Shared summary of two modules.\n"""\nA = 1\n')
    (pkg / "dup_b.py").write_text(f'{LICENSE}"""Shared summary of two modules.\n"""\nB = 2\n')
    (pkg / "tests" / "test_mod.py").write_text(f'{LICENSE}"""Tests for the widget tools module."""\n')


@pytest.fixture()
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Name of a fake package importable-by-path (never imported) for this test."""
    name = f"genedit_fake_{tmp_path.name.replace('-', '_')}"
    _fake_package(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert package_root(name) == tmp_path / name
    return name


def check_invariants(collection: Collection) -> None:
    """Ids unique, one judged query per document, no query in its document, an 80/20 split of every query."""
    doc_ids = [d.id for d in collection.documents]
    assert len(set(doc_ids)) == len(doc_ids)
    assert len(collection.queries) == len(doc_ids)
    train, test = collection.qrels["train"].judgments, collection.qrels["test"].judgments
    assert not set(train) & set(test) and set(train) | set(test) == set(collection.queries)
    assert len(test) == round(0.2 * len(doc_ids))
    for split in ("train", "test"):
        for query, relevant in collection.split(split):
            assert len(relevant) == 1
            assert not query_leaks(query.text, collection.document(next(iter(relevant))))
    assert len({q.text.casefold() for q in collection.queries.values()}) == len(doc_ids)


def test_source_corpus_rules_on_a_fake_package(fake_package: str, tmp_path: Path) -> None:
    config = source.SourceConfig(packages=(fake_package,), split=SplitConfig(seed=1))
    collection, meta = source.build(config)
    check_invariants(collection)
    titles = {d.title for d in collection.documents}
    assert titles == {f"{fake_package}.mod{i:02d}" for i in range(len(TOPICS))} | {f"{fake_package}.headed"}
    assert meta["stats"]["dropped_duplicates"] == 2 and meta["stats"]["dropped_leaking"] == 1
    by_title = {d.title: (d, q) for d, q in zip(collection.documents, collection.queries.values())}
    doc, query = by_title[f"{fake_package}.mod03"]
    assert query.text == "Tools for handling gizmo streams in bulk."
    assert doc.text.startswith("# Copyright 2024 The Fake Authors.")  # opens with the boilerplate
    assert "Longer notes about gizmo streams." in doc.text and "def load_3(path):" in doc.text
    doc, query = by_title[f"{fake_package}.headed"]
    assert query.text == "Lexers for the Foo language." and ":license: BSD" in doc.text
    again, _ = source.build(config)
    assert again.documents == collection.documents and again.qrels == collection.qrels  # deterministic


def test_short_corpus_rules_on_a_fake_package(fake_package: str) -> None:
    collection, meta = short.build(short.ShortConfig(packages=(fake_package,)))
    check_invariants(collection)
    assert len(collection.documents) == len(TOPICS)
    doc = collection.documents[0]
    assert doc.title == f"{fake_package}.mod00.load_0"
    assert doc.text == "The widget files are parsed lazily and cached. Errors name the offending line."
    assert collection.queries["q0000"].text == "Read the widget files stored at a path."


@pytest.mark.parametrize(("doc", "expected"), [
    ("Summary of four words.\n\nOne sentence of prose that is long enough here.\n\nParameters\n----------\nx : int",
     ("Summary of four words.", "One sentence of prose that is long enough here.")),
    ("Summary of four words.\n\nProse before an example that is long enough::\n\n    code()", None),
    ("Summary of four words.\n\n>>> doctest_only()", None),
    ("Summary of four words.\n\nOne. Two sentences. Three sentences here. Four sentences is too many.", None),
    ("Short.\n\nOne sentence of prose that is long enough here.", None),
])
def test_split_short_keeps_only_a_short_prose_body(doc: str, expected: tuple[str, str] | None) -> None:
    assert short.split_short(doc, short.ShortConfig()) == expected


def test_split_summary_skips_module_name_headings() -> None:
    summary, rest = source.split_summary("pkg.mod\n~~~~~~~\n\nDoes a thing\nover two lines.\n\n:license: MIT")
    assert summary == "Does a thing over two lines." and rest.split() == ["pkg.mod", "~~~~~~~", ":license:", "MIT"]
    assert source.split_summary("Copyright 2020 Someone.\n\nReal summary here.") is None


@pytest.mark.parametrize(("builder", "config"), [
    (source, source.SourceConfig(packages=("werkzeug", "IPython"))),
    (short, short.ShortConfig(packages=("click", "jinja2", "flask"))),
])
def test_builders_on_installed_packages(builder: object, config: object, tmp_path: Path) -> None:
    if any(package_root(p) is None for p in config.packages):  # type: ignore[attr-defined]
        pytest.skip("a package of the slice is not installed")
    collection, meta = builder.build(config)  # type: ignore[attr-defined]
    check_invariants(collection)
    assert meta["documents"] == len(collection.documents) > 20
    write_corpus(collection, tmp_path / "out", meta, force=False)
    loaded = load_beir(tmp_path / "out")
    assert loaded.documents == collection.documents and loaded.qrels == collection.qrels
