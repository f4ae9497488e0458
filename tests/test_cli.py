"""The Click CLI: analyze on the fake engine, error exits, models, help of every command."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from offline_cov.cli import main
from offline_cov.report.contract import CoverageReport, contract_violations


@pytest.fixture
def fake_engine(fake_engines):
    return fake_engines


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
    assert set(labels[0]) == {"index", "categories", "difficulty", "confidence", "probabilities"}
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


def word_model(tmp_path, monkeypatch, max_model_len: int) -> None:
    """A models.yaml whose one model is a local folder holding a tokenizer (one token a word, as the
    fake engine counts) and a config, no weights: enough for a token count, not for an engine."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path / "words"
    folder.mkdir()
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                              "unk_token": "[UNK]"}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    registry = tmp_path / "models.yaml"
    registry.write_text(f"default_gpu: words\ndefault_cpu: words\nmodels:\n  words:\n    source: {{kind: path, path: "
                        f"'{folder}'}}\n    vllm: {{max_model_len: {max_model_len}}}\n")
    monkeypatch.setenv("OFFLINE_COV_MODELS", str(registry))


@pytest.mark.parametrize("labeler", ["llm", "hybrid", "ensemble"])
def test_a_taxonomy_too_long_for_the_models_context_is_refused_before_the_engine_starts(tmp_path, monkeypatch,
                                                                                         fake_engine, labeler):
    """The label prompt's length was checked once the engine had started (30 s to minutes of vLLM's
    start on a CPU); the model's tokenizer alone tells it, and a taxonomy that fits still runs."""
    from conftest import EXAMPLE

    from offline_cov import engines

    word_model(tmp_path, monkeypatch, max_model_len=2048)
    loads, real = [], engines.ModelTokenizer
    monkeypatch.setattr(engines, "ModelTokenizer", lambda *a, **k: loads.append(a) or real(*a, **k))
    taxonomy = tmp_path / "t.yaml"
    taxonomy.write_text("".join(f"{name}:\n  description: {' '.join(['word'] * 500)}\n"
                                for name in ("math", "code", "writing", "reasoning", "factual_qa")))
    args = ["analyze", str(EXAMPLE), "--taxonomy-file", str(taxonomy), "--labeler", labeler, "-m", "words",
            "-o", str(tmp_path / "r.json"), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "leaves no room for samples in the model's 2048-token context" in result.output
    assert fake_engine == [] and len(loads) == 1  # no engine was opened; the tokenizer counted
    if labeler == "llm":  # hybrid and ensemble would load their embedding models
        taxonomy.write_text("math:\n  description: numbers\ncode:\n  description: programs\n")
        result = CliRunner().invoke(main, args + ["--sample", "3"])
        assert result.exit_code == 0, result.output
        assert len(fake_engine) == 1
        assert len(loads) == 1  # its bytes fit: no tokenizer was loaded for it


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

    from offline_cov.cli.docs import cli_reference

    docs = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert docs == cli_reference(), "docs/cli.md is stale: run python -m offline_cov.cli.docs"


def test_out_dash_prints_the_report_to_stdout_and_writes_no_metadata(tmp_path, fake_engine, monkeypatch):
    from conftest import EXAMPLE

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "-o", "-", "-q"])
    assert result.exit_code == 0, result.output
    report = CoverageReport.model_validate_json(result.stdout)
    assert report.total_samples_analyzed == 120
    assert [p.name for p in tmp_path.iterdir()] == ["labels.sqlite"]  # the test's label cache, no report or metadata
    for flag in ("--labels", "--html", "--markdown", "--metadata"):  # a file named "-" was written
        dashed = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "-o", "-",
                                           flag, "-", "-q"])
        assert dashed.exit_code == 2 and f"{flag} - : only the report (-o -) goes to standard output" in dashed.output
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("flags", [["-q"], []])
def test_the_libraries_are_asked_for_errors_only_unless_verbose(tmp_path, fake_engine, monkeypatch, flags):
    """With or without -q, the libraries print errors only (vLLM keeps its own logging on, so that its
    level applies: off, Python printed its warnings bare); -v leaves them as they are."""
    import os

    from conftest import EXAMPLE

    from offline_cov.cli.common import QUIET_LIBRARIES

    def unset():
        for name in [*QUIET_LIBRARIES, "VLLM_CONFIGURE_LOGGING"]:
            monkeypatch.delenv(name, raising=False)

    unset()
    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "-o", str(tmp_path / "r.json")]
    result = CliRunner().invoke(main, args + flags)
    assert result.exit_code == 0 and (result.output == "") == (flags == ["-q"])
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["VLLM_LOGGING_LEVEL"] == "ERROR" and os.environ["TORCH_CPP_LOG_LEVEL"] == "ERROR"
    assert os.environ["PYTHONWARNINGS"] == "ignore" and "VLLM_CONFIGURE_LOGGING" not in os.environ
    unset()
    result = CliRunner().invoke(main, args + ["-v"] + flags)
    assert result.exit_code == 0 and all(os.environ.get(name) != value for name, value in QUIET_LIBRARIES.items())


def test_the_labeler_and_the_engine_are_named_apart_in_the_metadata(tmp_path, fake_engine):
    from conftest import EXAMPLE

    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--labeler", "llm", "--engine", "transformers",
                                       "--taxonomy", "a,b", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["labeler"]["labeler"] == "llm" and meta["labeler"]["engine"] == "fake"
    assert fake_engine.calls == [("transformers", "smollm2-135m")]
    assert meta["model"] == "smollm2-135m"


def test_old_engine_spelling_of_a_labeler_still_works_with_a_note(tmp_path):
    from conftest import EXAMPLE

    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "fused", "--strategy", "distill",
                                       "--taxonomy", "a,b", "-o", str(tmp_path / "r.json")])
    assert "Note: --engine fused is deprecated; use --labeler fused" in result.output
    assert result.exit_code == 1  # distill learns from labels an LLM wrote, and fused writes none
    assert "Error: --strategy distill trains its classifier on labels an LLM writes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("args, words", [
    (["--taxonomy", "a", "--taxonomy-file", "models.yaml"], "give --taxonomy or --taxonomy-file, not both"),
    (["--taxonomy", "a", "--ray-address", "auto"], "--ray-address and --replicas go with --engine ray"),
    (["--taxonomy", "a", "--labeler", "llm", "--engine", "embed"], "--engine embed names a labeler"),
    (["--taxonomy", "a", "--labeler", "gpt"], "Invalid value for '--labeler'"),
])
def test_usage_errors_exit_2(args, words):
    from conftest import EXAMPLE, REPO

    args = [str(REPO / a) if a == "models.yaml" else a for a in args]
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), *args])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_a_failed_write_is_an_error_not_a_traceback(tmp_path, fake_engine):
    from conftest import EXAMPLE

    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b",
                                       "-o", str(blocker / "r.json"), "-q"])
    assert result.exit_code == 2  # found before any labeling
    assert f"--out {blocker / 'r.json'} cannot be written: {blocker} is not a folder" in result.output


def test_models_json_lists_every_model_and_the_default():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.output)
    names = [m["name"] for m in listed["models"]]
    assert "smollm2-135m" in names and "qwen2.5-7b-instruct" in names
    assert sum(m["default"] for m in listed["models"]) == 1
    assert all(m["weights"] in ("ready", "packaged", "missing") for m in listed["models"])


def test_models_says_whose_weights_are_here_without_fetching_or_converting(tmp_path, monkeypatch):
    from offline_cov.registry import ModelSpec, weights_here

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty Hugging Face cache
    folder = tmp_path / "weights"
    folder.mkdir()
    local = ModelSpec.model_validate({"name": "x", "source": {"kind": "path", "path": str(folder)}})
    assert weights_here(local) == "missing"
    (folder / "config.json").write_text("{}")
    assert weights_here(local) == "ready"
    hub = ModelSpec.model_validate({"name": "y", "source": {"kind": "hf", "repo": "org/never-downloaded"}})
    assert weights_here(hub) == "missing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]  # nothing fetched, nothing written


def test_the_summary_table_lines_up_with_wide_and_long_category_names(tmp_path):
    """Category names in CJK (two terminal columns a character) or longer than the default column
    keep the count and share columns aligned: every row's count ends at the header's column."""
    from conftest import EXAMPLE

    from offline_cov.cli.common import display_width

    names = ["数学问题", "code", "writing_and_communication_of_all_kinds"]
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(names),
                                       "-o", str(tmp_path / "r.json"), "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("category "))
    table = lines[header:header + 1 + len(names)]
    assert {line.split()[0] for line in table[1:]} == set(names)
    ends = {display_width(line[:line.index(" " + line.split()[1]) + 1 + len(line.split()[1])]) for line in table}
    assert len(ends) == 1, table


def test_the_possible_calls_line_asks_for_a_review_or_after_one_for_more_rows(capsys):
    from offline_cov.cli.analyze import _print_possible

    calls = {"share_intervals": {"calls": {"gaps": {"possible": ["math"]}, "over_represented": {"possible": []}}}}
    _print_possible(calls)
    err = capsys.readouterr().err.replace("\n", " ")
    assert "possible gaps: math" in err and "a review of about 200 labels (offline-cov review, then" in err
    _print_possible(calls | {"calibration": {"trustworthy": True, "corrected_share_percent": {"math": 4.0}}})
    err = capsys.readouterr().err.replace("\n", " ")
    assert "more reviewed rows narrow it" in err and "a review of about 200 labels" not in err
    _print_possible(calls | {"calibration": {"trustworthy": False, "corrected_share_percent": {"math": 4.0}}})
    err = capsys.readouterr().err.replace("\n", " ")
    assert "the calibration was not applied: more calibration rows of the categories its warning names" in err


def test_ctrl_c_says_what_was_kept_and_exits_130(tmp_path, fake_engine, monkeypatch):
    from conftest import EXAMPLE

    import offline_cov.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(offline_cov.pipeline, "analyze", interrupted)
    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b", "-o", str(tmp_path / "r.json"), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130 and "Interrupted; the labels made so far are in the label cache" in result.output
    assert "Aborted!" not in result.output and not (tmp_path / "r.json").exists()
    result = CliRunner().invoke(main, args + ["--no-cache"])
    assert result.exit_code == 130 and "nothing was kept (--no-cache)" in result.output


def test_sigterm_stops_analyze_as_ctrl_c_does_and_exits_143(tmp_path, fake_engine, monkeypatch):
    """A batch system's cancel or time limit (SIGTERM) killed the run without a word."""
    import os
    import signal
    import time

    from conftest import EXAMPLE

    import offline_cov.pipeline

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(offline_cov.pipeline, "analyze", terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "a,b",
                                       "-o", str(tmp_path / "r.json"), "-q"])
    assert result.exit_code == 143 and "Terminated; the labels made so far are in the label cache" in result.output
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the run's only
