"""TREC run files: round trip and malformed input."""

from __future__ import annotations

import pytest

from genedit.data.types import DataError
from genedit.eval import Run, read_trec_run, write_trec_run


def sample_run() -> Run:
    return Run(
        ranking={"q1": ["d3", "d1", "d2"], "q_2": ["d9"], "q3": []},
        scores={"q1": [0.9, 0.123456789012345, -1e-7], "q_2": [3.0], "q3": []},
        name="myrun",
    )


def test_round_trip(tmp_path):
    run = sample_run()
    path = write_trec_run(run, tmp_path / "sub" / "run.trec")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d3", "1", "0.9", "myrun"]
    assert [line.split()[3] for line in lines[:3]] == ["1", "2", "3"]
    back = read_trec_run(path)
    assert back.name == "myrun"
    assert back.ranking == {"q1": ["d3", "d1", "d2"], "q_2": ["d9"]}  # a query with no documents has no line
    assert back.scores == {"q1": [0.9, 0.123456789012345, -1e-7], "q_2": [3.0]}


def test_custom_tag_and_name(tmp_path):
    path = write_trec_run(sample_run(), tmp_path / "run.txt", tag="other")
    assert all(line.endswith(" other") for line in path.read_text().splitlines())
    assert read_trec_run(path).name == "other"
    assert read_trec_run(path, name="given").name == "given"


def test_read_orders_by_rank_and_skips_blank_lines(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 b 2 0.5 t\n\nq1 Q0 a 1 0.7 t\nq2 0 c 1 1e-3 t\n")
    run = read_trec_run(path)
    assert run.ranking == {"q1": ["a", "b"], "q2": ["c"]}
    assert run.scores["q2"] == [0.001]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n", 2, "expected 6 columns"),
        ("q1 Q0 d1 1 0.5 t extra\n", 1, "expected 6 columns"),
        ("q1 Q0 d1 1 0.5 t\n\nq1 Q0 d2 two 0.4 t\n", 3, "rank 'two' is not an integer"),
        ("q1 Q0 d1 1 high t\n", 1, "score 'high' is not a number"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", 2, "repeated"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, content, line, match):
    path = tmp_path / "bad.trec"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        read_trec_run(path)
    assert f"{path}:{line}:" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_write_rejects_whitespace_ids_and_score_mismatch(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_trec_run(Run(ranking={"q 1": ["d"]}, scores={"q 1": [1.0]}), tmp_path / "a")
    with pytest.raises(ValueError, match="whitespace"):
        write_trec_run(Run(ranking={"q": ["d x"]}, scores={"q": [1.0]}), tmp_path / "b")
    with pytest.raises(ValueError, match="scores"):
        write_trec_run(Run(ranking={"q": ["d", "e"]}, scores={"q": [1.0]}), tmp_path / "c")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_trec_run(tmp_path / "nope.trec")
