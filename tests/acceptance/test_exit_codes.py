"""The CLI's exit codes: 0 ok, 1 a finding, 2 bad input, 3 internal error (traceback only with -v)."""

from __future__ import annotations

import pytest

import genedit.cli as cli
import genedit.cli.parser as parser


@pytest.fixture
def data(tmp_path):
    from genedit.data import synthetic_collection, write_beir

    path = tmp_path / "synth"
    write_beir(synthetic_collection(10, seed=1), path)
    return path


def _raising(exc: BaseException):
    def handler(args):
        raise exc

    return handler


def test_an_internal_error_exits_3_in_one_line(monkeypatch, data, capsys):
    monkeypatch.setattr(parser, "cmd_baseline", _raising(RuntimeError("boom inside")))
    assert cli.main(["baseline", "tfidf", "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert err.strip() == "genedit: internal error: RuntimeError: boom inside (run with -v for the traceback)"


def test_verbose_shows_the_traceback(monkeypatch, data, capsys):
    monkeypatch.setattr(parser, "cmd_baseline", _raising(ZeroDivisionError("division by zero")))
    assert cli.main(["-v", "baseline", "tfidf", "--data", str(data)]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError" in err and "in handler" in err


def test_a_finding_exits_1_and_bad_input_2(monkeypatch, data, capsys):
    monkeypatch.setattr(parser, "cmd_baseline", lambda args: 1)
    assert cli.main(["baseline", "tfidf", "--data", str(data)]) == 1
    for exc in (ValueError("bad value"), KeyError("missing key"), FileNotFoundError("no such file"), FileExistsError("exists")):
        monkeypatch.setattr(parser, "cmd_baseline", _raising(exc))
        assert cli.main(["baseline", "tfidf", "--data", str(data)]) == 2
        assert capsys.readouterr().err.startswith("genedit: error: ")


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--data", "default"])
    assert exc.value.code == 2 and "--protocol" in capsys.readouterr().err
