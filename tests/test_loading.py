"""One loader (`st.load`), model folders (`save_pretrained` / `from_pretrained`) and `convert`."""

from __future__ import annotations

import json

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.cli import main
from conftest import official_fixture


def _official_pth(tmp_path, name: str = "spikformer_cifar_small"):
    fx = official_fixture(name)
    pth = tmp_path / f"{name}.pth"
    torch.save(fx["state_dict"], pth)  # what an official training script leaves: a plain state dict
    return fx, pth


def test_convert_then_from_pretrained_gives_identical_logits(tmp_path, capsys):
    fx, pth = _official_pth(tmp_path)
    kwargs = fx["meta"]["kwargs"]
    out = tmp_path / "model"
    argv = ["convert", str(pth), "--family", "spikformer", "--out", str(out)]
    for k, v in kwargs.items():
        argv += ["--model-arg", f"{k}={v!r}"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["builder"] == "official" and config["official_family"] == "spikformer"
    assert config["T"] == kwargs["T"] and config["num_classes"] == kwargs["num_classes"]

    reference = st.from_official("spikformer", kwargs)
    st.load_official_state_dict(reference, fx["state_dict"])
    reference.eval()
    loaded = st.from_pretrained(out)
    assert not loaded.training
    x = fx["input"].float()
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
        # and the official numbers, in float64 (the fixture's precision), from the converted folder
        torch.testing.assert_close(loaded.double()(fx["input"]), fx["output_eval"], rtol=1e-9, atol=1e-12)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key].float(), value.float()), key
    # every command's loader reads the folder the same way
    again = st.load(out)
    with torch.no_grad():
        assert torch.equal(again(x), reference(x))


def test_load_official_file_directly_with_family(tmp_path):
    fx, pth = _official_pth(tmp_path)
    model = st.load(pth, family="spikformer", model_args=fx["meta"]["kwargs"])
    with torch.no_grad():
        torch.testing.assert_close(model.double()(fx["input"]), fx["output_eval"], rtol=1e-9, atol=1e-12)


def test_convert_with_wrong_kwargs_names_the_shape(tmp_path, capsys):
    fx, pth = _official_pth(tmp_path)
    argv = ["convert", str(pth), "--family", "spikformer", "--out", str(tmp_path / "m")]
    for k, v in dict(fx["meta"]["kwargs"], embed_dims=32).items():
        argv += ["--model-arg", f"{k}={v!r}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shape mismatch" in err and "--model-arg" in err
    assert main(["convert", str(pth), "--family", "spikformer", "--out", str(tmp_path / "m")]) == 2
    assert "needs --model-arg" in capsys.readouterr().err
    assert main(["convert", str(pth), "--family", "sdt", "--out", str(tmp_path / "m")] + argv[6:]) == 2
    assert "unknown to the 'sdt' converter" in capsys.readouterr().err


def test_save_pretrained_of_a_created_model_round_trips(tmp_path):
    args = dict(embed_dim=16, depth=1, num_heads=2, img_size=16, T=2)
    model = st.create_model("sdt_2_256_cifar10", **args).eval()
    with pytest.raises(st.LoadError, match="model_args"):
        st.save_pretrained(model, tmp_path / "bad")  # the overrides are not recorded on the model: refused
    st.save_pretrained(model, tmp_path / "m", model_args=args)
    back = st.from_pretrained(tmp_path / "m")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    st.save_pretrained(back, tmp_path / "m2")  # a loaded model remembers how it was built
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["model_args"] == args


def test_bare_safetensors_is_matched_to_its_variant(tmp_path):
    from safetensors.torch import save_file

    model = st.create_model("sdt_2_256_cifar10", num_classes=7).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    loaded = st.load_any_checkpoint(tmp_path / "w.safetensors")
    assert loaded.name == "sdt_2_256_cifar10" and loaded.model.num_classes == 7
    assert any("matched" in n for n in loaded.notes)


def test_create_model_with_checkpoint(tmp_path):
    args = dict(embed_dim=16, depth=1, num_heads=2, img_size=16, T=2)
    model = st.create_model("sdt_2_256_cifar10", **args).eval()
    st.save_pretrained(model, tmp_path / "m", model_args=args)
    back = st.create_model("sdt_2_256_cifar10", checkpoint=str(tmp_path / "m" / "model.safetensors"), **args)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    with pytest.raises(st.LoadError, match="shape mismatch"):
        st.create_model("sdt_2_256_cifar10", checkpoint=str(tmp_path / "m" / "model.safetensors"),
                        **dict(args, embed_dim=32))
