"""The analysis on registered models: audit verdicts of the lineage, a hand count of dense FLOPs, a cross-check
with SpikingJelly 2.0's operation counter, and the ``energy`` command."""

from __future__ import annotations

import json

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.analysis import analyze, bn_batch_statistics
from spiking_transformers.cli import main


def _tiny(name: str, **extra):
    info = st.model_info(name)
    overrides = {**info.tiny_overrides, **extra}
    model = st.create_model(name, **overrides)
    img = overrides.get("img_size", info.img_size)
    chans = overrides.get("in_chans", info.in_chans)
    if info.input_kind == "events":
        g = torch.Generator().manual_seed(0)
        return model, torch.poisson(torch.full((model.T, 2, chans, img, img), 0.5), generator=g)
    return model, torch.randn(2, chans, img, img)


@pytest.mark.parametrize("name", st.list_models(task="classification"))
def test_registry_spike_driven_flag_agrees_with_the_audit(name):
    """What the registry says of a model (spike_driven) is what the operator-level audit measures."""
    model, x = _tiny(name)
    report = analyze(model, [x], batch_stats=True)
    measured = report.audit.verdict == "spike-driven"
    assert measured == st.model_info(name).spike_driven, report.audit.explain()


@pytest.mark.parametrize(
    "name,verdict",
    [
        ("spikformer_8_384", "integer-driven"),  # spike-element-wise shortcut: the blocks take sums of spikes
        ("sdt_8_384", "spike-driven"),  # membrane shortcut
        ("sdt_v2_15m", "spike-driven"),  # separable / re-parameterisable convs fold into the layer before
        ("sdt_v3_t", "multi-level"),  # E-SpikeFormer: integer-valued (normalised) spikes
        ("qsd_8m", "multi-level"),
    ],
)
def test_lineage_audit_verdicts(name, verdict):
    model, x = _tiny(name)
    r = analyze(model, [x], batch_stats=True)
    assert r.audit.verdict == verdict, r.audit.explain()
    if name == "spikformer_8_384":
        # the layers after the SEW residual, named
        assert {"block.0.attn.q_linear", "block.0.mlp.fc1_linear", "head"} <= set(r.audit.integer)
    assert r.totals["acs"] > 0 and r.totals["macs"] > 0


@pytest.mark.parametrize("name", ["sdt_v3_t", "qsd_8m"])
def test_multi_level_models_are_spike_driven_after_binary_expansion(name):
    from spiking_transformers.export import binary_expansion as expansion

    model, x = _tiny(name)
    integer = analyze(model, [x], batch_stats=True)
    with expansion.binary_expanded(model):
        binary = analyze(model, [x], batch_stats=True)
    assert binary.audit.verdict == "spike-driven", binary.audit.explain()
    # weight layers see the same events (k spikes of an integer k); only activation-activation products cost
    # more in binary form (each pair of virtual steps is multiplied)
    assert binary.totals["acs"] >= integer.totals["acs"] > 0


def test_dense_flops_match_a_hand_count_per_layer():
    # Spikformer (ImageNet form) at D=32, 64x64 input, T=2, 2 heads. Conv FLOPs = k^2 H_out W_out C_in C_out and
    # FC FLOPs = in * out, per time step (lineage spec 0.3); the SPS pools halve the size after each stage.
    model, x = _tiny("spikformer_8_384", depth=1, embed_dim=32, num_heads=2, T=2, img_size=64, num_classes=10)
    r = analyze(model, [x])
    D, T, N, h = 32, 2, 16, 2
    d = D // h
    per_step = {
        "patch_embed.proj_conv": 9 * 64 * 64 * 3 * (D // 8),
        "patch_embed.proj_conv1": 9 * 32 * 32 * (D // 8) * (D // 4),
        "patch_embed.proj_conv2": 9 * 16 * 16 * (D // 4) * (D // 2),
        "patch_embed.proj_conv3": 9 * 8 * 8 * (D // 2) * D,
        "patch_embed.rpe_conv": 9 * 4 * 4 * D * D,
        "block.0.attn.q_linear": N * D * D,
        "block.0.attn.k_linear": N * D * D,
        "block.0.attn.v_linear": N * D * D,
        "block.0.attn:matmul0": h * d * N * d,  # K^T V first (the ImageNet file's order)
        "block.0.attn:matmul1": h * N * d * d,  # Q (K^T V)
        "block.0.attn.proj_linear": N * D * D,
        "block.0.mlp.fc1_linear": N * D * 4 * D,
        "block.0.mlp.fc2_linear": N * 4 * D * D,
    }
    got = {row.key: row.dense_flops for row in r.layers}
    assert {k: got[k] for k in per_step} == {k: T * v for k, v in per_step.items()}
    assert got["head"] == D * 10  # the head runs once, on the time-averaged features
    assert r.totals["ann_flops"] == pytest.approx(sum(per_step.values()) + D * 10 / T)


def test_cross_check_with_spikingjelly_op_counter():
    """SpikingJelly 2.0's ``SynOpCounter`` counts, for an aten mm/addmm/bmm/convolution whose input is a *binary*
    tensor, the weight uses of its spikes, exactly as we count ACs. It counts 0 for real or integer inputs (our MACs
    and integer ACs), skips element-wise masks, and counts binary x binary products by coincidence. On SDT V1 (all
    binary, attention by masks only) it must therefore equal our ACs of conv/linear layers, the encoding left out."""
    pytest.importorskip("spikingjelly")
    op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")
    model, x = _tiny("sdt_8_384", depth=1, embed_dim=32, num_heads=2, T=2, img_size=32)
    r = analyze(model, [x], batch_stats=True)
    counter = op_counter.SynOpCounter()
    model.eval()
    with bn_batch_statistics(model), torch.no_grad(), op_counter.DispatchCounterMode([counter]):
        model(x)
    ours = sum(row.acs for row in r.layers if row.op in ("conv", "linear") and not row.encoding) * x.shape[0]
    assert ours > 0
    assert counter.get_total() == pytest.approx(ours)


def test_energy_command_single_model(tmp_path, capsys):
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    assert main(["energy", "sdt_8_384", "--tiny", "--json", str(js), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "AS INITIALISED" in out and "RANDOM inputs" in out and "audit: spike-driven" in out
    data = json.loads(js.read_text())
    assert data["model"] == "sdt_8_384" and data["audit"]["verdict"] == "spike-driven"
    assert data["totals"]["energy_pj"] > 0 and data["layers"]
    assert png.read_bytes()[:4] == b"\x89PNG"  # matplotlib is a test dependency


def test_energy_command_compare_and_checkpoint(tmp_path, capsys):
    model = st.create_model("sdt_8_384", **st.model_info("sdt_8_384").tiny_overrides)
    ckpt = tmp_path / "w.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    js = tmp_path / "c.json"
    argv = ["energy", "--compare", "sdt_8_384", "spikformer_8_384", "--tiny", "--checkpoint", str(ckpt),
            "--json", str(js), "--memory"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "integer-driven" in out and "spike-driven" in out and "ANN / SNN" in out and "memory access" in out
    models = json.loads(js.read_text())["models"]
    assert [m["model"] for m in models] == ["sdt_8_384", "spikformer_8_384"]
    assert any(f"weights: {ckpt}" in n for n in models[0]["notes"])  # each note names its model
    assert any("AS INITIALISED" in n for n in models[1]["notes"])
    assert main(["energy", "sdt_8_384", "spikformer_8_384"]) == 2  # several models need --compare


def test_energy_command_with_data(capsys):
    # the digits are grey: a 3-channel model refuses them in one line, a 1-channel one takes them
    assert main(["energy", "sdt_8_384", "--tiny", "--data", "digits", "--batches", "2", "--batch-size", "3"]) == 2
    capsys.readouterr()
    assert main(["energy", "sdt_8_384", "--tiny", "--model-arg", "in_chans=1", "--data", "digits", "--batches", "2",
                 "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "data: digits (test), 2 batch(es) of 3" in out and "6 sample(s)" in out
