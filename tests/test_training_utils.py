"""Helpers shared by the training tests (no tests here): a tiny spiking model and a CLI launcher for subprocesses.

The tiny model keeps the subprocess tests (SIGKILL + resume, torchrun) fast and independent of the model families;
it has BatchNorm (to exercise per-rank vs synchronised statistics), LIF neurons and a TimeDistributed head.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from spiking_transformers.layers._shapes import TimeDistributed
from spiking_transformers.models._base import SpikingModel
from spiking_transformers.neurons import LIF

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY = "test_tiny_snn"


class TinySNN(SpikingModel):
    """conv3x3+BN -> LIF -> 2x2 avg-pool -> linear head, over ``T`` steps. ``[B, C, H, W]`` -> ``[B, K]``."""

    def __init__(self, *, num_classes: int = 10, img_size: int = 8, in_chans: int = 1, T: int = 2,
                 width: int = 8) -> None:
        super().__init__()
        self.T, self.num_classes, self.input_kind = T, num_classes, "image"
        self.stem = TimeDistributed(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.lif = LIF()
        self.pool = TimeDistributed(nn.AvgPool2d(2), nn.Flatten())
        self.num_features = width * (img_size // 2) ** 2
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.lif(self.stem(self.encode_input(x))))  # [T, B, F]

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        out = self.head(x)  # [T, B, K]
        return out.mean(0) if reduce_time else out


def register_tiny() -> None:
    """Register ``test_tiny_snn`` (idempotent)."""
    from spiking_transformers.models import list_models, register_model
    from spiking_transformers.models._registry import Paper

    if TINY in list_models(TINY):
        return

    @register_model(family="test", paper=Paper(title="test model", venue="none", year=2025), lineage=None,
                    spike_driven=False, default_T=2, input_kind="image", dataset="digits", num_classes=10,
                    img_size=8, in_chans=1)
    def test_tiny_snn(**kwargs) -> TinySNN:
        return TinySNN(**kwargs)


def install_test_hooks() -> None:
    """Test-only behaviour of a CLI subprocess, chosen by environment variables (library code has none):

    ``ST_TEST_KILL_AT_STEP=N``: the process SIGKILLs itself right after optimiser step N (mid-epoch crash).
    ``ST_TEST_DUMP_WEIGHTS=DIR``: after training, every rank writes its weights to ``DIR/rank<r>.safetensors``.
    """
    import signal

    from safetensors.torch import save_file

    from spiking_transformers.training import trainer as trainer_mod

    kill_at = int(os.environ.get("ST_TEST_KILL_AT_STEP", "0"))
    dump = os.environ.get("ST_TEST_DUMP_WEIGHTS")
    original_init, original_fit = trainer_mod.Trainer.__init__, trainer_mod.Trainer.fit

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if kill_at:
            def kill(tr):
                if tr.global_step == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            self.callbacks.append(kill)

    def fit(self, *args, **kwargs):
        out = original_fit(self, *args, **kwargs)
        if dump:
            Path(dump).mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()},
                      str(Path(dump) / f"rank{self.env.rank}.safetensors"))
        return out

    trainer_mod.Trainer.__init__, trainer_mod.Trainer.fit = init, fit


# A script that registers the tiny model and runs the CLI with its arguments (usable under torchrun).
LAUNCHER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from test_training_utils import install_test_hooks, register_tiny
register_tiny()
install_test_hooks()
from spiking_transformers.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def write_launcher(folder: Path) -> Path:
    path = folder / "launch_cli.py"
    path.write_text(LAUNCHER)
    return path


def cli_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def run_cli(folder: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            torchrun: int = 0) -> subprocess.CompletedProcess:
    """Run the CLI (with the tiny model registered) in a fresh interpreter, or under torchrun with N processes."""
    launcher = str(write_launcher(folder))
    prefix = [sys.executable]
    if torchrun:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"]
    return subprocess.run([*prefix, launcher, *args], env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
