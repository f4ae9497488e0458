"""The Click CLI: analyze on the fake engine, error exits, models, help of every command."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from offline_cov import pipeline
from offline_cov.cli import main
from offline_cov.contract import CoverageReport, contract_violations
from offline_cov.engines.fake import FakeEngine


@pytest.fixture
def fake_engine(monkeypatch):
    engines = []

    def fake_open(name, model, seed=0):
        engines.append(FakeEngine(seed=seed))
        return engines[-1]

    monkeypatch.setattr(pipeline, "open_engine", fake_open)
    return engines


def test_analyze_writes_report_labels_metadata_and_html(tmp_path, fake_engine):
    from conftest import EXAMPLE

    out = tmp_path / "r.json"
    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "math,code,writing,reasoning,factual_qa", "--out", str(out),
            "--labels", str(tmp_path / "l.jsonl"), "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = CoverageReport.model_validate_json(out.read_text())
    assert contract_violations(report, ["math", "code", "writing", "reasoning", "factual_qa"]) == []
    assert set(json.loads(out.read_text())) == {
        "categories", "total_samples_analyzed", "gaps", "over_represented", "balance_score", "decision_basis"}
    labels = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert len(labels) == report.total_samples_analyzed == 120
    assert set(labels[0]) == {"index", "categories", "difficulty"}
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    assert meta["prompt_version"] and meta["samples"]["analyzed"] == 120
    assert "share-chart" in (tmp_path / "r.html").read_text()
    assert "| category" in (tmp_path / "r.md").read_text().lower()
    assert "gaps:" in result.output and "labeling" in result.output


def test_quiet_prints_nothing(tmp_path, fake_engine):
    from conftest import EXAMPLE

    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "--out", str(tmp_path / "r.json"), "-q"])
    assert result.exit_code == 0 and result.output == ""


def test_sample_warning_reaches_stderr_and_metadata(tmp_path, fake_engine):
    from conftest import EXAMPLE

    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "--sample", "20", "--out", str(out)])
    assert result.exit_code == 0
    assert "Warning: only 20 samples" in result.output
    assert json.loads((tmp_path / "r.meta.json").read_text())["input"]["sample_size"] == 20


def test_bad_input_exits_nonzero_naming_file_and_line(tmp_path, fake_engine):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n')
    result = CliRunner().invoke(main, ["analyze", str(bad), "--taxonomy", "a,b", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "bad.jsonl, line 2" in result.output and "--skip-bad-lines" in result.output
    assert not (tmp_path / "r.json").exists()


def test_bad_taxonomy_exits_nonzero(tmp_path, fake_engine):
    from conftest import EXAMPLE

    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "math,MATH"])
    assert result.exit_code == 1 and "appears twice" in result.output


def test_unknown_model_lists_the_available_ones(tmp_path):
    from conftest import EXAMPLE

    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "a,b", "--model", "gpt-9",
                                       "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "Unknown model 'gpt-9'" in result.output and "smollm2-135m" in result.output


def test_gpu_model_on_a_cpu_machine_is_refused(tmp_path, monkeypatch):
    from conftest import EXAMPLE

    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setattr("offline_cov.engines.vllm_engine.gpu_available", lambda: False)
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "a,b", "--model", "qwen2.5-7b-instruct",
                                       "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1 and "needs a GPU" in result.output


def test_models_lists_default():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "smollm2-135m" in result.output and "qwen2.5-7b-instruct" in result.output
    assert "* = default" in result.output


def test_bad_models_file_is_rendered_for_people(tmp_path, monkeypatch):
    f = tmp_path / "models.yaml"
    f.write_text("default_gpu: x\ndefault_cpu: x\nmodels:\n  x:\n    source: {kind: ftp}\n    vllm: {max_model_len: -1}\n")
    monkeypatch.setenv("OFFLINE_COV_MODELS", str(f))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 1
    assert "is not a valid models file" in result.output
    assert "models.x.source.kind" in result.output and "models.x.vllm.max_model_len" in result.output


def test_every_command_has_help_and_an_example():
    runner = CliRunner()
    for name, command in main.commands.items():
        for flag in ("-h", "--help"):
            result = runner.invoke(main, [name, flag])
            assert result.exit_code == 0, name
        assert "Example:" in command.help, name
        assert command.get_short_help_str(), name


def test_help_imports_neither_vllm_nor_torch():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom offline_cov.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "for c in main.commands: CliRunner().invoke(main, [c, '--help'])\n"
        "print(r.exit_code, sorted(m for m in ('vllm', 'torch', 'transformers', 'outlines') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


def test_cli_docs_are_generated_from_help():
    from conftest import REPO
    from offline_cov.docs import cli_reference

    docs = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert docs == cli_reference(), "docs/cli.md is stale: run python -m offline_cov.docs"
