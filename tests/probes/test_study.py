"""The whole study on the tiny random Llama: tables, resume, report from the table alone, CLI and specs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.errors import TransferlabError
from transferlab.probes import protocol
from transferlab.probes.results import ProbeResults
from transferlab.probes.spec import ProbeStudyConfig, parse_probe_spec
from transferlab.probes.study import run_probe_study

runner = CliRunner()


@pytest.fixture
def tiny_loaded(tiny):
    tiny.identity = "tiny-llama@test"
    return tiny


def config(out: Path, **kw) -> ProbeStudyConfig:
    base = dict(model="tiny-llama", datasets=("cities", "cities_conj", "larger_than"),
                algorithms=("dim", "lr", "pca-g", "random"), limit=8, resamples=50, output=str(out), report=False)
    return ProbeStudyConfig(**{**base, **kw})


def test_study_writes_a_tidy_table_and_resumes(tiny_loaded, tmp_path, monkeypatch):
    root = run_probe_study(config(tmp_path / "run"), loaded=tiny_loaded)
    results = ProbeResults(root)
    frame = results.frame()
    # a random tiny model is at chance everywhere: accuracies, but no recovered accuracy, and a skip saying why
    assert {"acc", "auroc"} <= set(frame.metric)
    assert set(frame.split) == {"hparams", "validation"}
    assert set(frame.layer) == {1, 2}
    assert frame.value.notna().all() and frame.value.between(0, 1).all()
    skips = results.skips()
    if "recovered" not in set(frame.metric):
        assert skips.reason.str.contains("not above chance").any()
    assert ((skips.trained_on == "cities_conj") & (skips.algorithm == "pca-g")).any(), "one-statement groups: a skip"
    run = results.read_run()
    assert run["datasets"]["cities"]["grouped"] and not run["datasets"]["cities_conj"]["grouped"]
    # a second run reuses every stored activation and fit
    monkeypatch.setattr(protocol, "fit_one", lambda *a, **k: pytest.fail("refitted a stored probe"))
    import transferlab.probes.activations as acts

    monkeypatch.setattr(acts, "extract", lambda *a, **k: pytest.fail("re-extracted stored activations"))
    run_probe_study(config(tmp_path / "run"), loaded=tiny_loaded)
    assert len(ProbeResults(root).frame()) == len(frame)


def planted_run(root: Path) -> Path:
    """A run directory whose table comes from planted activations (no model at all)."""
    from tests.probes.test_protocol import data
    from transferlab.probes.results import result_rows

    sets = [data("cities", 0), data("larger_than", 1), data("cities_conj", 2, grouped=False),
            data("mmlu", 3, signal=2.5)]
    bank = protocol.fit_bank(sets, {"dim": {}, "lr": {}, "lda": {}, "lat": {}, "pca-g": {}, "random": {}}, [1, 2])
    evs = protocol.evaluate(bank, sets, resamples=50)
    results = ProbeResults(root)
    results.replace("planted", "planted", result_rows("planted", "planted", bank, evs, [1, 2]))
    results.update_run(model="planted", layers=[1, 2], position="last", limit=0, wall_seconds=1.0,
                       command="(planted)", datasets={
                           s.name: {"family": "mmlu" if s.name == "mmlu" else "got",
                                    "grouped": s.name != "cities_conj", "train": 1, "hparams": 1, "validation": 1}
                           for s in sets})
    cross = [("planted", "planted", "dim", 1, "cities", "cities", "validation", "acc", 0.9, 10, 0.8, 1.0),
             ("planted", "planted", "dim", 1, "cities", "cities", "hparams", "acc", 0.9, None, None, None),
             ("planted", "other", "dim", 1, "cities", "cities", "validation", "acc", 0.7, 10, 0.6, 0.8),
             ("planted", "other", "dim", 1, "cities", "cities", "hparams", "acc", 0.7, None, None, None)]
    results.replace("planted", "planted", cross[:2], table="probe_cross_model")
    results.replace("planted", "other", cross[2:], table="probe_cross_model")
    return root


def test_report_from_the_table_alone(tmp_path):
    root = planted_run(tmp_path / "run")
    result = runner.invoke(app, ["probes", "report", str(root)])
    assert result.exit_code == 0, result.output
    report = root / "report"
    for name in ("r0_acc_by_layer.png", "r1a_by_algorithms.png", "r1b_by_train.png", "r1c_by_layer.png",
                 "r2_probes.png", "r3a_datasets.png", "r3b_matrix.png", "r3c_to_and_from.png", "r3d_clustering.png",
                 "v1_in_distribution.png", "v2_got.png", "v3_repe.png", "v4_lda.png", "x1_cross_model.png",
                 "summary.md"):
        assert (report / name).stat().st_size > 0, name
    summary = (report / "summary.md").read_text()
    assert "mean cross-dataset recovered accuracy" in summary and "| nan" not in summary.lower()
    assert "Model × Trained on" in summary
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["probes", "report", str(empty)]).exit_code != 0


def test_bad_layer_and_unknown_names_are_one_line_errors(tiny_loaded, tmp_path):
    with pytest.raises(TransferlabError, match="layer 9 is out of range"):
        run_probe_study(config(tmp_path / "a", layers="9"), loaded=tiny_loaded)
    with pytest.raises(TransferlabError, match="did you mean 'cities'"):
        config(tmp_path / "b", datasets=("citis",)).checked()
    with pytest.raises(TransferlabError, match="probe algorithm"):
        config(tmp_path / "b", algorithms=("lda2",)).checked()


def test_spec_parsing_and_dispatch(tmp_path):
    text = ("study: probes\nname: p\nmodel: smollm2-135m\ndatasets: [cities, mmlu]\nlimit: 50\n"
            "limits: {mmlu: 20}\ncross_model: {models: [gemma3-270m], datasets: [cities]}\noutput: x\n")
    cfg = parse_probe_spec(text, "p.yaml")
    assert cfg.datasets == ("cities", "mmlu") and cfg.limits == {"mmlu": 20}
    assert cfg.cross_model is not None and cfg.cross_model.models == ("gemma3-270m",)
    with pytest.raises(TransferlabError, match=r"p.yaml:2: lmit: unknown field 'lmit': did you mean 'limit'"):
        parse_probe_spec("study: probes\nlmit: 3\n", "p.yaml")
    spec = tmp_path / "p.yaml"
    spec.write_text(text)
    result = runner.invoke(app, ["run", str(spec), "--dry-run"])
    assert result.exit_code == 0 and "probe study 'p'" in result.output
    assert runner.invoke(app, ["probes", "run", "--help"]).exit_code == 0


def test_shipped_spec_parses():
    spec = Path(__file__).parents[2] / "experiments" / "probes.yaml"
    if not spec.exists():
        pytest.skip("experiments/probes.yaml not present")
    assert parse_probe_spec(spec.read_text(), str(spec)).model == "smollm2-135m"


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from tests.tiny_models import TinyLoaded
import transferlab.probes.activations as acts
from transferlab.probes.spec import ProbeStudyConfig
from transferlab.probes.study import run_probe_study

real, calls = acts.extract, []
def extract(*args, **kwargs):
    calls.append(1)
    if len(calls) == {kill_at} and {kill}:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of an extraction
    return real(*args, **kwargs)
acts.extract = extract
tiny = TinyLoaded()
tiny.identity = "tiny-llama@test"
run_probe_study(ProbeStudyConfig(model="tiny-llama", datasets=("cities", "cities_conj", "larger_than"),
                                 algorithms=("dim", "lr"), limit=8, resamples=50, output={out!r}, report=False),
                loaded=tiny)
print("extractions", len(calls))
"""


def test_a_probe_run_killed_mid_extraction_resumes_through_the_job_engine(tmp_path):
    import subprocess
    import sys

    repo = str(Path(__file__).parents[2])

    def run(out: Path, kill: bool) -> subprocess.CompletedProcess:
        script = KILLED_RUN.format(repo=repo, kill_at=2, kill=kill, out=str(out))
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=repo, timeout=300)

    killed = run(tmp_path / "run", kill=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    from transferlab.engine.store import Store

    store = Store(tmp_path / "run")
    assert [j["kind"] for j in store.jobs() if j["status"] == "done"] == ["extract"], "the first dataset was kept"
    assert list((tmp_path / "run" / "artifacts" / "claims").iterdir()), "the killed worker's claim is left behind"
    resumed = run(tmp_path / "run", kill=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "extractions 2" in resumed.stdout, "only the two missing datasets were extracted"
    jobs = ProbeResults(tmp_path / "run").read_run()["jobs"]
    assert (jobs["ran"], jobs["reused"], jobs["failed"]) == (9, 1, 0)  # 3 extract, 6 fit, 1 score
    fresh = run(tmp_path / "fresh", kill=False)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    columns = ["algorithm", "layer", "trained_on", "evaluated_on", "split", "metric"]
    a = ProbeResults(tmp_path / "run").frame().sort_values(columns).reset_index(drop=True)
    b = ProbeResults(tmp_path / "fresh").frame().sort_values(columns).reset_index(drop=True)
    assert len(a) and a.equals(b), "the resumed run's table equals an uninterrupted run's"


def test_cross_model_probes_run_as_jobs_and_resume(tiny_loaded, tmp_path, monkeypatch):
    from tests.tiny_models import TinyLoaded
    from transferlab.probes.spec import CrossModelConfig

    other = TinyLoaded(seed=1)
    other.name, other.identity = "tiny-llama-b", "tiny-llama-b@test"
    cfg = config(tmp_path / "run", algorithms=("dim", "lr"),
                 cross_model=CrossModelConfig(models=("tiny-llama-b",), neutral_texts=200))
    root = run_probe_study(cfg, loaded=[tiny_loaded, other])
    cross = ProbeResults(root).frame("probe_cross_model")
    pairs = set(zip(cross.source_model, cross.model))
    assert pairs == {(a, b) for a in ("tiny-llama", "tiny-llama-b") for b in ("tiny-llama", "tiny-llama-b")}
    native = ProbeResults(root).frame(model="tiny-llama", split="validation", metric="acc")
    diagonal = cross[(cross.model == "tiny-llama") & (cross.source_model == "tiny-llama") & (cross.split == "validation")]
    same = native.merge(diagonal, on=["algorithm", "layer", "trained_on", "evaluated_on"], suffixes=("", "_x"))
    assert len(same) and (same.value == same.value_x).all(), "the diagonal is the native probe"
    assert ProbeResults(root).read_run()["cross_model"]["models"] == ["tiny-llama", "tiny-llama-b"]
    monkeypatch.setattr(protocol, "fit_one", lambda *a, **k: pytest.fail("refitted after a finished run"))
    run_probe_study(cfg, loaded=[tiny_loaded, other])
    assert ProbeResults(root).read_run()["jobs"]["ran"] == 0


PROBE_SPEC = """\
study: probes
name: two-workers
model: smollm2-135m
datasets: [cities, larger_than]
algorithms: [dim, lr]
layers: "every:10"
limit: 8
resamples: 50
report: false
output: {output}
"""


@pytest.mark.integration
def test_two_workers_on_one_probe_spec_run_each_job_once(tmp_path):
    from tests.workers import assert_each_job_ran_once, run_workers

    spec = tmp_path / "probes.yaml"
    spec.write_text(PROBE_SPEC.format(output=tmp_path / "run"))
    total = 2 + 4 + 1  # 2 extractions, 2 x 2 fits, 1 scoring
    assert_each_job_ran_once(run_workers(spec), total, tmp_path / "run" / "artifacts" / "claims")


def test_a_failed_cross_model_job_keeps_the_study_table_and_names_the_job(tiny_loaded, tmp_path, monkeypatch):
    from tests.tiny_models import TinyLoaded
    from transferlab.probes import jobs
    from transferlab.probes.spec import CrossModelConfig

    other = TinyLoaded(seed=1)
    other.name, other.identity = "tiny-llama-b", "tiny-llama-b@test"

    def broken(*args, **kwargs):
        raise TransferlabError("the map could not be fitted")

    monkeypatch.setattr(jobs, "fit_ridge_maps", broken)
    cfg = config(tmp_path / "run", algorithms=("dim",),
                 cross_model=CrossModelConfig(models=("tiny-llama-b",), neutral_texts=200))
    with pytest.raises(TransferlabError, match=r"probe job 'map .*' failed: the map could not be fitted \(and 1 more\)"):
        run_probe_study(cfg, loaded=[tiny_loaded, other])
    results = ProbeResults(tmp_path / "run")
    assert len(results.frame()) > 0, "the finished scoring is written"
    assert set(results.frame("probe_cross_model").source_model) == {"tiny-llama", "tiny-llama-b"}  # the diagonals
    assert results.read_run()["jobs"]["failed"] == 2


def test_the_report_never_picks_a_baseline_as_best(tmp_path):
    from transferlab.probes.tables import Tables, headline

    rows = []
    for algorithm, hp_acc, val_acc in (("dim", 0.7, 0.7), ("random", 0.9, 0.9)):  # random scores best everywhere
        for a in ("x", "y"):
            for b in ("x", "y"):
                cell = ("m", "m", algorithm, 1, a, b)
                own = 1.0 if a == b else 0.0
                rows.append((*cell, "hparams", "acc", min(1.0, hp_acc + own * 0.05), None, None, None))
                rows.append((*cell, "validation", "acc", min(1.0, val_acc + own * 0.05), 20, 0.5, 1.0))
                rows.append((*cell, "validation", "recovered", min(1.0, val_acc / 0.95), 20, 0.5, 1.0))
    results = ProbeResults(tmp_path)
    results.replace("m", "m", rows)
    t = Tables(results.frame(), "m")
    assert set(t.best().algorithm) == {"dim"}
    assert set(t.best("trained_on").algorithm) == {"dim"} and set(t.best("layer").algorithm) == {"dim"}
    assert set(t.best("algorithm").algorithm) == {"dim", "random"}, "each algorithm's bar, random as reference"
    _, picked = t.matrix()
    assert set(picked.algorithm) == {"dim"}, "no matrix row is a random probe"
    assert headline(t)["best"]["algorithm"] == "dim"


def test_matrix_cells_at_chance_are_marked(tmp_path):
    from transferlab.probes.tables import Tables, at_chance

    rows = []
    for a in ("x", "y"):
        for b in ("x", "y"):
            cell = ("m", "m", "dim", 1, a, b)
            rows += [(*cell, "hparams", "acc", 0.8, None, None, None),
                     (*cell, "validation", "acc", 0.8, 20, 0.6, 0.95),
                     (*cell, "validation", "recovered", 0.9, 20, 0.7, 1.0)]
            low, high = (-0.2, 0.4) if (a, b) == ("x", "y") else (0.3, 0.9)  # x -> y: its CI includes chance
            rows.append((*cell, "validation", "recovered_cc", (low + high) / 2, 20, low, high))
    results = ProbeResults(tmp_path)
    results.replace("m", "m", rows)
    t = Tables(results.frame(), "m")
    matrix, picked = t.matrix()
    mask = at_chance(t, matrix, picked)
    assert mask.loc["x", "y"] and not mask.loc["y", "x"] and not mask.loc["x", "x"]
