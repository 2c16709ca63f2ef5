import subprocess
import sys

import pytest
import torch

from hyperbook.chapters import check_chapter
from hyperbook.cli import main
from hyperbook.context import RunContext, resolve_device
from hyperbook.errors import NoGPUError, UnknownChoiceError
from hyperbook.profiles import check_profile


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(UnknownChoiceError, match="smoke, reduced, full, book|book, full, reduced, smoke"):
        check_profile("fast")


def test_unknown_chapter_lists_valid_ones():
    with pytest.raises(UnknownChoiceError) as err:
        check_chapter("hypernet")
    assert "hypernets" in str(err.value) and "hypernet'" in str(err.value)


def test_unknown_device():
    with pytest.raises(UnknownChoiceError, match="auto"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present here")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(NoGPUError, match="no CUDA GPU"):
        RunContext.from_params("hypernets", "full", "cuda")
    assert resolve_device("auto") == "cpu"


@pytest.mark.parametrize("argv, message", [
    (["run", "nope", "smoke"], "unknown chapter 'nope'; valid chapters:"),
    (["run", "hypernets", "huge"], "unknown profile 'huge'; valid profiles:"),
    (["run", "hypernets", "smoke", "-p", "colour=1"], "unknown parameter of chapter 'hypernets' 'colour'"),
    (["run", "hypernets", "smoke", "-p", "seed"], "not of the form name=value"),
])
def test_cli_rejects_bad_input_at_once(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present here")
def test_cli_rejects_cuda_without_gpu(capsys):
    assert main(["run", "hypernets", "smoke", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_make_run_without_chapter_says_what_to_do():
    out = subprocess.run(["make", "-s", "run", f"PY={sys.executable}", "STAMP="], capture_output=True, text=True,
                         cwd=str(__import__("hyperbook.results").results.REPO_ROOT))
    assert out.returncode != 0 and "CHAPTER is required" in out.stdout + out.stderr
