"""MST (Masked Spiking Transformer): SNN parity with the official fixture, parameter counts, QCFS -> SNN conversion,
Random Spike Masking and its measured synaptic operations, the audit verdict, and the ANN-to-SNN pipeline."""

from __future__ import annotations

import json

import pytest
import torch
from _official_counts import check_official_param_count, official_counts
from _parity import check_parity
from conftest import official_fixture

import spiking_transformers as st
from spiking_transformers.analysis import analyze
from spiking_transformers.models import count_parameters
from spiking_transformers.models.mst import (
    QCFS,
    MaskedSpikingTransformer,
    ScaledIF,
    build_official_mst,
    convert_to_snn,
    qcfs_sites,
)

VARIANTS = st.list_models("mst_*")
# A small model whose sites fire as initialised (clip 0.1 instead of 2.0, see the registry's tiny_overrides).
TINY = dict(img_size=16, patch_size=2, in_chans=1, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4, num_classes=10)


def _fixture_kwargs(fx: dict) -> dict:
    meta = fx["meta"]
    return {**meta["kwargs"], "sim_len": meta["sim_len"], "neuron_scales": meta["neuron_scales"]}


# --------------------------------------------------------------------------------------------------------------
# Parity and official interface
# --------------------------------------------------------------------------------------------------------------


def test_parity_mst_snn_fixture():
    fx = official_fixture("mst_snn_small", folder="wave2")
    fx = {**fx, "meta": {**fx["meta"], "kwargs": _fixture_kwargs(fx)}}
    r = check_parity("mst", fx, per_timestep=True)
    assert fx["output_eval"].shape == (fx["meta"]["sim_len"], 2, 10)
    print(f"\nmst_snn_small: eval rel err {r.eval_rel_err:.3e}, train rel err {r.train_rel_err:.3e}, "
          f"max grad rel err {r.grad_max_rel_err:.3e} over {r.n_grads} tensors")


def test_from_official_modes_and_thresholds():
    fx = official_fixture("mst_snn_small", folder="wave2")
    kw = _fixture_kwargs(fx)
    snn = st.from_official("mst", kw)
    assert snn.mode == "snn" and snn.T == 8 and not any(isinstance(m, QCFS) for m in snn.modules())
    sites = qcfs_sites(snn)
    assert set(sites) == set(kw["neuron_scales"]) == set(fx["spike_counts"])
    assert all(sites[n].scale == kw["neuron_scales"][n] for n in sites)
    assert {n for n, m in sites.items() if m.rsm} == {n for n in sites if n.split(".")[-1] in ("q_if", "k_if", "attn_if")}
    # Without sim_len: the QCFS ANN, one clip parameter per site, one step.
    ann = st.from_official("mst", fx["meta"]["kwargs"])
    assert ann.mode == "ann" and ann.T == 1
    assert count_parameters(ann) == count_parameters(snn) + len(sites) == fx["meta"]["n_params"] + len(sites)
    assert {f"{n}.up" for n in sites} <= set(ann.state_dict())


def test_official_builder_rejects_bad_arguments():
    kw = dict(official_fixture("mst_snn_small", folder="wave2")["meta"]["kwargs"])
    with pytest.raises(TypeError, match="not_official"):
        build_official_mst(**kw, not_official=1)
    with pytest.raises(ValueError, match="neuron_scales must name every site"):
        build_official_mst(**kw, sim_len=4, neuron_scales={"patch_embed.proj_if": 1.0})
    with pytest.raises(ValueError, match="needs sim_len"):
        build_official_mst(**kw, neuron_scales={})
    with pytest.raises(ValueError, match="norm_layer"):
        build_official_mst(**{**kw, "norm_layer": "nn.BatchNorm1d"})
    model = build_official_mst(**kw, sim_len=2)
    with pytest.raises(ValueError, match="input image size"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="masking_ratio"):
        MaskedSpikingTransformer(**TINY, masking_ratio=1.0)


def test_released_checkpoint_flow_ann_load_then_convert():
    """A released checkpoint is the QCFS ANN (keys ``*.up``): load into the ANN, then convert with its clips."""
    kw = dict(official_fixture("mst_snn_small", folder="wave2")["meta"]["kwargs"])
    src = st.from_official("mst", kw)
    with torch.no_grad():
        for i, site in enumerate(qcfs_sites(src).values()):
            site.up.fill_(0.5 + 0.01 * i)
    ann = st.from_official("mst", kw)
    st.load_official_state_dict(ann, src.state_dict())
    convert_to_snn(ann, 6)
    scales = [m.scale for m in qcfs_sites(ann).values()]
    assert ann.T == 6 and scales == pytest.approx([0.5 + 0.01 * i for i in range(len(scales))])


# --------------------------------------------------------------------------------------------------------------
# Registry and parameter counts
# --------------------------------------------------------------------------------------------------------------


def test_registry_variants():
    assert set(VARIANTS) == {"mst_swin_t_imagenet", "mst_swin_t_cifar100", "mst_swin_t_cifar10"}
    info = st.model_info("mst_swin_t_imagenet")
    assert not info.spike_driven and info.default_T == 128 and info.reported_top1 == 78.51
    assert info.paper.repo == "bic-L/Masked-Spiking-Transformer" and info.paper.year == 2023


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_counts_with_and_without_qcfs_clips(name):
    info, entry = check_official_param_count(name, bound=0.0001)
    # the registered SNN holds the 124 clips as thresholds; the QCFS ANN has them as parameters
    assert info.params == entry["params_without_qcfs_thresholds"]
    with torch.device("meta"):
        ann = st.create_model(name, mode="ann")
        official = st.from_official("mst", {**entry["kwargs"]})
    assert count_parameters(ann) == count_parameters(official) == entry["params"]
    assert len(qcfs_sites(ann)) == info.official_unused_params == 124


# --------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [4, 8, 16])
def test_scaled_if_equals_qcfs_when_sim_len_equals_levels(levels):
    """The QCFS theorem: with T = L and the membrane starting at half the threshold, the IF neuron's mean output on
    a constant input is exactly the QCFS activation."""
    x = torch.linspace(-1.0, 3.0, 1001, dtype=torch.float64)
    up = 1.7
    q = QCFS(up, levels).double()
    ref = q(x).detach()
    snn = ScaledIF(up)(x.expand(levels, -1).clone()).mean(0)
    assert torch.allclose(snn, ref, atol=1e-12)
    spikes = ScaledIF(up)(x.expand(levels, -1).clone()) * (1 / up)
    assert torch.equal(spikes, spikes.round()) and spikes.max() == 1


def _tiny_pair(T: int, seed: int = 0) -> tuple[MaskedSpikingTransformer, MaskedSpikingTransformer, torch.Tensor]:
    torch.manual_seed(seed)
    ann = MaskedSpikingTransformer(**TINY, mode="ann", levels=8, threshold=1.0).double().eval()
    with torch.no_grad():  # fan-in init so that the sites see O(1) inputs (the official 0.02 leaves them silent)
        for m in ann.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, m.in_features ** -0.5)
    x = torch.randn(8, 1, 16, 16, dtype=torch.float64)
    snn = MaskedSpikingTransformer(**TINY, mode="ann", levels=8, threshold=1.0).double().eval()
    snn.load_state_dict(ann.state_dict())
    convert_to_snn(snn, T)
    return ann, snn, x


def test_snn_approaches_the_qcfs_ann_as_sim_len_grows():
    ann, snn, x = _tiny_pair(4)
    with torch.no_grad():
        ref = ann(x)
        errs = []
        for T in (4, 16, 64):
            convert_to_snn(snn, T)
            errs.append(float((snn(x) - ref).abs().max() / ref.abs().max()))
    # The error falls with T but not to zero: products of two spike trains (Q K^T, P V) and the per-step softmax
    # are not the products and softmax of the rates, a residual error of MST's conversion itself.
    assert errs[2] < errs[1] < errs[0] and errs[2] < 0.85 * errs[0], errs


def test_forward_is_the_mean_of_forward_timesteps_and_ann_is_one_step():
    ann, snn, x = _tiny_pair(5)
    with torch.no_grad():
        steps = snn.forward_timesteps(x)
        assert steps.shape == (5, 8, 10)
        assert torch.allclose(snn(x), steps.mean(0), atol=1e-12)
        assert ann.forward_timesteps(x).shape == (1, 8, 10)


def test_ann_trains_the_clips():
    ann, _, x = _tiny_pair(2)
    ann.train()
    ann(x).square().sum().backward()
    assert all(m.up.grad is not None and m.up.grad.abs().sum() > 0 for m in qcfs_sites(ann).values())


# --------------------------------------------------------------------------------------------------------------
# Random Spike Masking
# --------------------------------------------------------------------------------------------------------------


def _spike_counts(model, x) -> dict[str, float]:
    counts: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: counts.__setitem__(n, float((o * mod.spike_scale).sum())))
             for n, m in qcfs_sites(model).items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return counts


def test_masking_drops_spikes_at_the_rsm_sites_only():
    _, snn, x = _tiny_pair(8)
    full = _spike_counts(snn, x)
    snn.set_masking_ratio(0.75)
    masked = _spike_counts(snn, x)
    # q_if of the first block sees the same input either way: the mask removes ~75 % of its spikes
    first_q = "layers.0.blocks.0.attn.q_if"
    assert 0.15 < masked[first_q] / full[first_q] < 0.35
    # sites upstream of any mask are untouched
    assert masked["patch_embed.proj_if"] == full["patch_embed.proj_if"]
    assert masked["layers.0.blocks.0.shortcut1_if"] == full["layers.0.blocks.0.shortcut1_if"]
    rsm = {n for n, m in qcfs_sites(snn).items() if m.rsm}
    assert all(n.endswith(("q_if", "k_if", "attn_if")) for n in rsm) and len(rsm) == 12
    # masks are drawn afresh at every call
    with torch.no_grad():
        assert not torch.equal(snn(x), snn(x))
    snn.set_masking_ratio(0.0)
    with torch.no_grad():
        assert torch.equal(snn(x), snn(x))


def test_mask_mlp_flag_adds_the_mlp_sites():
    model = MaskedSpikingTransformer(**TINY, mask_mlp=True, masking_ratio=0.5, T=2)
    rsm = {n.split(".")[-1] for n, m in qcfs_sites(model).items() if m.rsm}
    assert rsm == {"q_if", "k_if", "attn_if", "fc1_if", "fc2_if"}
    assert all(m.mask_ratio == 0.5 for m in qcfs_sites(model).values() if m.rsm)


def test_masking_lowers_measured_synaptic_operations():
    """The energy analysis counts the masked spikes where they are consumed: Q K^T (driven by the masked Q) costs
    fewer accumulates, and the total falls."""
    _, snn, x = _tiny_pair(8)
    torch.manual_seed(0)
    base = analyze(snn, [x])
    snn.set_masking_ratio(0.75)
    masked = analyze(snn, [x])
    qk = "layers.0.blocks.0.attn:matmul0"
    b = {r.key: r for r in base.layers}
    m = {r.key: r for r in masked.layers}
    assert b[qk].input_kind == m[qk].input_kind == "binary"
    assert 0.15 < m[qk].acs / b[qk].acs < 0.4
    assert masked.totals["acs"] < base.totals["acs"]


def test_audit_verdict_not_spike_driven_head_on_real_values():
    name = "mst_swin_t_cifar10"
    info = st.model_info(name)
    model = st.create_model(name, **info.tiny_overrides)
    r = analyze(model, [torch.randn(2, 3, 32, 32)], batch_stats=True)
    # LayerNorm -> mean -> head is analog; everything else takes spikes (Q K^T and P V included)
    assert r.audit.verdict == "not purely spiking" and r.audit.real == ["head"], r.audit.explain()
    assert "layers.0.blocks.0.attn:matmul1" in r.audit.real_operands  # softmax(P) times spiking V
    assert r.totals["acs"] > 0


# --------------------------------------------------------------------------------------------------------------
# ANN -> SNN pipeline on the digits
# --------------------------------------------------------------------------------------------------------------


def test_pipeline_smoke(tmp_path):
    from spiking_transformers.training.ann2snn import Ann2SnnConfig, run_ann2snn

    cfg = Ann2SnnConfig(img_size=8, embed_dim=8, epochs=1, train_limit=64, test_limit=16, sim_lens=(2, 4),
                        mask_ratios=(0.0, 0.5), mask_sim_len=4, sop_samples=8, batch_size=32)
    result = run_ann2snn(cfg, out_dir=tmp_path)
    assert set(result["snn_accuracy"]) == {"2", "4"}
    assert [row["mask_ratio"] for row in result["masking"]] == [0.0, 0.5]
    assert all(row["acs"] > 0 for row in result["masking"])
    data = json.loads((tmp_path / "ann2snn.json").read_text())
    assert data["ann_accuracy"] == result["ann_accuracy"]
    assert (tmp_path / "ann2snn.png").stat().st_size > 1000


@pytest.mark.slow
def test_pipeline_digits_reaches_accuracy(tmp_path):
    from spiking_transformers.training.ann2snn import Ann2SnnConfig, run_ann2snn

    result = run_ann2snn(Ann2SnnConfig(), out_dir=tmp_path)
    assert result["ann_accuracy"] > 0.85
    acc = result["snn_accuracy"]
    assert acc["32"] > 0.8 and acc["32"] >= acc["4"]
    rows = result["masking"]
    assert rows[-1]["acs"] < rows[0]["acs"]


def test_cli_ann2snn(tmp_path, capsys):
    from spiking_transformers.cli import main

    rc = main(["ann2snn", "--img-size", "8", "--embed-dim", "8", "--epochs", "1", "--train-limit", "32",
               "--test-limit", "8", "--sim-lens", "2", "--mask-ratios", "0", "0.5", "--sop-samples", "8",
               "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "sim_len" in out and "mask" in out
    assert (tmp_path / "ann2snn.json").exists() and (tmp_path / "ann2snn.png").exists()
