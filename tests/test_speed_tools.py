"""The speed tools: the GPU check (its no-GPU error and its CPU path at a tiny size), the HE-CNN speed
command's table, and the paired speed-up file next to the step-time tables."""
import json

import pytest
import torch

from hyperbook import bench, gpu_check
from hyperbook.errors import NoGPUError


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_without_a_gpu_says_so(tmp_path):
    with pytest.raises(NoGPUError, match="no CUDA GPU"):
        gpu_check.main(["--out", str(tmp_path / "gpu.json")])
    assert not (tmp_path / "gpu.json").exists()


def test_gpu_check_cpu_path_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    report = gpu_check.main(["--device", "cpu", "--batch", "2", "--repeat", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["batch"] == 2 and len(saved["conv"]) == len(gpu_check.LAYERS) and len(saved["model"]) == 2
    for row in report["conv"]:
        assert set(row["ms"]) == {"per_sample_conv2d", "grouped", "im2col", "loop", "averaged"}
        assert all(v > 0 for v in row["ms"].values())
    assert "loop/batched" in capsys.readouterr().out


def test_hecnn_speed_prints_its_table(capsys):
    from hyperbook.experiments import hecnn_speed
    metrics = hecnn_speed.main(["--batch", "4", "--threads", "1", "--mode", "batch", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "batch 4, 1 thread(s)" in out and "HE-CNN-L, batch-averaged" in out and "images/s" in out
    assert set(metrics["images_per_s"]) == {"plain CNN", hecnn_speed.AVERAGED}
    with pytest.raises(SystemExit):
        hecnn_speed.main(["--mode", "fastest"])


def test_speedups_file_keeps_rows_and_reads_as_a_timing_table(tmp_path, mnist_dir):
    from hyperbook.units import load_timings
    path = tmp_path / "_timings" / "speedups.json"
    rows = bench.measure_speedups(["mnist_sizes (pixel)"], steps=1, warmup=1, data_dir=mnist_dir)
    assert len(rows) == 1 and rows[0]["exactness"]["grad_max_rel"] < 1e-5
    assert {"experiment", "old_ms", "new_ms", "ratio", "exactness", "date"} <= set(rows[0])
    bench.write_speedups(rows, path)
    bench.write_speedups([dict(rows[0], saving="another")], path)
    table = json.loads(path.read_text())
    assert len(table["speedups"]) == 2 and table["units"] == {}
    assert [t["units"] for t in load_timings(tmp_path)] == [{}]     # the planner reads it and finds no step times
    with pytest.raises(Exception, match="speed-up case"):
        bench.measure_speedups(["no such case"])


def test_readme_speed_table_is_the_committed_measurement():
    """The README's table is generated from results/_timings/speedups.json, never typed."""
    from hyperbook.readme_blocks import read_block
    assert read_block("speedups") == bench.speedups_markdown()


def test_readme_full_cost_table_is_the_committed_step_time_table():
    """The README's per-chapter CPU hours are generated from the committed records and results/_timings (`hyperbook
    plan --readme`), never typed."""
    from hyperbook.readme_blocks import read_block
    from hyperbook.units import full_cost_markdown
    assert read_block("costs") == full_cost_markdown()


def test_rmnist_turned_once_gives_bitwise_the_batches_turned_in_the_step(mnist_dir):
    """The bench case of R-MNIST's precomputed training set: the same gradients as turning every batch by its
    images' fixed angles inside the step, to the last bit."""
    row = bench.run_case(bench.CASES["hecnn/t1_cnn_rmnist: R-MNIST turned once"], steps=1, warmup=0,
                         data_dir=mnist_dir)
    assert row["exactness"] == {"grad_max_rel": 0.0} and row["batch"] == 32
