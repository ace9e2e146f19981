"""bench/run.py in its quick mode, as a developer runs it: it exits 0, prints the table and writes
the JSON (and, with matplotlib, the chart). Its figures are timings and are not asserted: only
that each is there and is a positive, finite number."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def load_bench():
    """bench/run.py as a module."""
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_quick_benchmark_prints_the_table_and_writes_the_results(tmp_path):
    threads = min(2, os.cpu_count())
    result = subprocess.run([sys.executable, str(RUN), "--quick", "--threads", str(threads), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "mlpcore / system" in result.stdout and "roofline:" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["threads"] == threads
    workloads = results["workloads"]
    for name in ("mnist", "tiny", "wide", "infer1", "mnist_float64"):
        throughput = workloads[name]["throughput"]
        assert {"mlpcore", "numpy"} <= set(throughput), name
        assert all(positive(value) for value in throughput.values()), name
    assert "mlpcore (Python loop)" in workloads["tiny"]["throughput"]
    for name in ("mnist", "tiny", "wide"):
        assert positive(workloads[name]["roofline"]) and positive(workloads[name]["gemm_gflops"]), name
    memory = workloads["memory"]
    assert set(memory["memory_bytes"]) == {"parameters", "gradients", "optimizer_state", "spare_parameters",
                                           "workspace"}
    assert math.isfinite(memory["growth_after_first_step"])
    if load_bench().reset_peak():  # where this process may, the benchmark's could too
        assert positive(memory["peak_growth"]["mlpcore"])
        assert ("torch" in memory["peak_growth"]) == ("torch" in workloads["mnist"]["throughput"])
    else:
        assert memory["peak_growth"] == {}
    assert [row["what"] for row in results["scaling"]] == [
        "m = 768", "m = 1536", "m = 3072", "width x1", "width x2", "width x4",
        *(f"mnist, {k} thread(s)" for k in sorted({1, threads}))]
    assert all(positive(row["seconds"]) for row in results["scaling"])
    assert (tmp_path / "results.png").exists() == (importlib.util.find_spec("matplotlib") is not None)


@pytest.mark.parametrize("threads", [0, 1 << 20])
def test_a_thread_count_outside_the_processors_is_refused_before_any_workload(threads, tmp_path):
    result = subprocess.run([sys.executable, str(RUN), "--quick", "--threads", str(threads), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("run.py: error: --threads: the thread count must lie in 1..")
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
