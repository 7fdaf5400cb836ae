"""The newcomer's path (issue 15): each bad input gets one line on stderr and exit status 2, a trained run goes
through `eval` and `energy`, and silent mistakes at the model's door (layout, T, channels, dtype) are said."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.cli import main

# A real registered architecture (the digits recipe's SDT), as small as it goes: one epoch takes seconds.
_RUN_ARGS = ["--model", "sdt_2_256_cifar10", "--model-arg", "embed_dim=16", "--model-arg", "depth=1",
             "--model-arg", "num_heads=2", "--T", "2", "--data", "digits", "--epochs", "1", "--batch-size", "128",
             "--lr", "5e-3", "--threads", "1", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    n = torch.get_num_threads()
    out = tmp_path_factory.mktemp("newcomer") / "run"
    assert main(["train", *_RUN_ARGS, "--out", str(out)]) == 0
    torch.set_num_threads(n)
    return out


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert lines and lines[-1].startswith(f"spiking-transformers {argv[0]}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    return lines[-1]


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


# ------------------------------------------------------------------------------------------------ weights files
@pytest.mark.parametrize("damage, needle", [
    ("truncate", "corrupt or truncated safetensors"),
    ("empty", "empty file (0 bytes)"),
    ("text", "a text file"),
])
def test_eval_damaged_weights_is_one_line(run_dir, tmp_path, capsys, damage, needle):
    run = _copy_run(run_dir, tmp_path)
    w = run / "model.safetensors"
    data = w.read_bytes()
    if damage == "truncate":
        w.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        w.write_bytes(b"")
    else:
        w.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    _one_line_error(capsys, ["eval", str(run), "--threads", "1"], str(w), needle)


def test_eval_weights_of_another_architecture(run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    other = st.create_model("sdt_2_256_cifar10", embed_dim=32, depth=1, num_heads=2, in_chans=1, img_size=8)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(run / "model.safetensors"))
    line = _one_line_error(capsys, ["eval", str(run), "--threads", "1"], "do not fit", "shape mismatch")
    assert "weights (4, 1, 3, 3), model (2, 1, 3, 3)" in line  # names the key's shapes (stem width/4: 32 vs 16)
    assert "config.json and its weights disagree" in line


def test_text_file_to_energy_checkpoint_and_eval(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    _one_line_error(capsys, ["energy", "sdt_2_256_cifar10", "--tiny", "--checkpoint", str(text)], "a text file")
    _one_line_error(capsys, ["eval", str(text)], "a text file")


def test_energy_checkpoint_of_the_run_with_its_own_model_name(run_dir, capsys):
    # the main job's case: `energy MODEL --checkpoint RUN/model.safetensors` with the run's width overrides
    assert main(["energy", "sdt_2_256_cifar10", "--checkpoint", str(run_dir / "model.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "(run)" in out and "data: digits (test)" in out


def test_energy_wrong_model_for_a_run_names_the_run(run_dir, capsys):
    _one_line_error(capsys, ["energy", "spikformer_4_384_cifar10", "--checkpoint",
                             str(run_dir / "model.safetensors")], "do not fit", "give the folder")


# ------------------------------------------------------------------------------------------------ runs
def test_eval_and_energy_take_the_run_folder(run_dir, tmp_path, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir), "--threads", "1"]) == 0
    assert f"top-1 {metrics['test_top1']:.2f}%" in capsys.readouterr().out
    js = tmp_path / "energy.json"
    assert main(["energy", str(run_dir), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "data: digits (test)" in out and "weights:" in out
    assert json.loads(js.read_text())  # a full report
    # trained weights keep their running statistics; no "AS INITIALISED" warning
    assert "AS INITIALISED" not in out and "BatchNorm uses batch statistics" not in out


def test_eval_recalibrate_bn_changes_only_statistics(run_dir, capsys):
    assert main(["eval", str(run_dir), "--threads", "1", "--recalibrate-bn", "3", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "re-estimated from 192 training samples" in out and "top-1" in out


def test_resume_with_only_a_corrupt_checkpoint(run_dir, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    for step in (run / "checkpoints").glob("step-*"):
        f = step / "model.safetensors"
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.unlink()  # break the hard link with checkpoints/best before writing
        f.write_bytes(bytes(data))
    line = _one_line_error(capsys, ["train", "--resume", str(run), "--threads", "1", "--no-progress"],
                           "no usable checkpoint", "without --resume")
    assert "SHA-256" in line


@pytest.mark.parametrize("command", ["eval", "train"])
def test_data_dir_that_does_not_exist(run_dir, capsys, command):
    argv = (["eval", str(run_dir)] if command == "eval" else ["train", *_RUN_ARGS, "--out", "/nonexistent/run"])
    _one_line_error(capsys, [*argv, "--data-dir", "/nonexistent"], "--data-dir /nonexistent: no such folder")


# ------------------------------------------------------------------------------------------------ other commands
def test_bench_unknown_backend(capsys):
    _one_line_error(capsys, ["bench", "sdt_2_256_cifar10", "--tiny", "--backend", "foo"],
                    "--backend 'foo'", "available:")


def test_unknown_model_did_you_mean(capsys):
    _one_line_error(capsys, ["info", "sdt_8_38"], "did you mean 'sdt_8_384'")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError):
        main(["eval", str(tmp_path / "nope"), "--debug"])


def test_models_into_a_closed_pipe_is_silent():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # a pattern keeps the table short (and the test fast); the pipe is closed before any of it is written
    proc = subprocess.Popen([sys.executable, "-m", "spiking_transformers", "models", "sdt_2*"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader (`| head`) has gone before the table is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0
    assert "Broken pipe" not in err and "Traceback" not in err and "Errno" not in err


def test_train_help_says_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: None)" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ the model's door
def _events_model():
    return st.create_model("spikformer_2_256_dvs128gesture", img_size=32, embed_dim=32, num_heads=2, depth=1)


def test_batch_major_event_frames_are_named():
    model = _events_model().eval()
    assert model.T == 16
    x = torch.zeros(2, 16, 2, 32, 32)  # [B, T, C, H, W]: the mistake
    with pytest.warns(UserWarning, match=r"batch-major \[B, T, C, H, W\].*x.transpose\(0, 1\)"):
        model.encode_input(x)
    with torch.no_grad():
        assert model(x.transpose(0, 1)).shape == (2, 11)  # the right layout runs without a word


def test_wrong_T_is_named_and_set_T_is_the_explicit_override():
    model = st.create_model("sdt_2_256_cifar10", embed_dim=16, depth=1, num_heads=2, img_size=16).eval()
    x = torch.randn(7, 1, 3, 16, 16)
    with pytest.warns(UserWarning, match=r"built for T=4 .* has T=7.*set_T\(7\)"):
        model.encode_input(x)
    model.set_T(7)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            assert model(x).shape == (1, 10)
    with pytest.raises(ValueError, match="T must be >= 1"):
        model.set_T(0)


def test_events_model_refuses_a_static_image():
    with pytest.raises(ValueError, match=r"event-data model .* T=16"):
        _events_model()(torch.zeros(2, 2, 32, 32))


def test_wrong_channels_and_dtype():
    model = st.create_model("sdt_2_256_cifar10", embed_dim=16, depth=1, num_heads=2, img_size=16)
    with pytest.raises(ValueError, match=r"takes 3-channel input .* got 1 channels"):
        model(torch.zeros(2, 1, 16, 16))
    with pytest.raises(TypeError, match=r"floating-point input, got torch.uint8"):
        model(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"torch.float32 weights but the input is torch.float64"):
        model(torch.zeros(2, 3, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got a 3-D input"):
        model(torch.zeros(3, 16, 16))
