"""Metadata derived from the architecture: every registered variant's info against the model it builds."""

from __future__ import annotations

import pytest
import torch

import spiking_transformers as st
from spiking_transformers.models._registry import DERIVED_FIELDS, architecture_facts, count_parameters, stated_info
from spiking_transformers.models.sdt import SpikeDrivenTransformer


@pytest.mark.parametrize("name", st.list_models(task="classification"))
def test_registered_metadata_matches_the_model_it_builds(name):
    # model_info builds the variant on the meta device (the largest cost no memory) and reads its facts from it;
    # every fact the family also wrote by hand must agree with the model.
    info, stated = st.model_info(name), stated_info(name)
    assert info.params and info.default_T and info.input_kind in ("image", "events")
    for field in DERIVED_FIELDS:
        written = getattr(stated, field)
        assert written is None or written == getattr(info, field), (
            f"{name}: registered {field}={written!r} but the model it builds has {getattr(info, field)!r}"
        )


@pytest.mark.parametrize("name", ["spikformer_8_768", "sdt_v3_171m_kd_1x8", "qkformer_10_768", "sdt_2_256_cifar10"])
def test_model_info_is_read_from_the_built_model(name):
    info = st.model_info(name)
    with torch.device("meta"):
        model = st.create_model(name)
    assert info.params == count_parameters(model)
    assert (info.default_T, info.num_classes, info.input_kind) == (model.T, model.num_classes, model.input_kind)
    assert info.img_size == architecture_facts(model)["img_size"]


def test_architecture_facts_read_the_model():
    model = SpikeDrivenTransformer(
        num_classes=7, img_size=(32, 48), in_chans=2, T=3, embed_dim=32, depth=1, num_heads=4, input_kind="events"
    )
    facts = architecture_facts(model)
    assert facts == dict(
        params=count_parameters(model), default_T=3, input_kind="events", num_classes=7, img_size=(32, 48), in_chans=2
    )
    square = architecture_facts(SpikeDrivenTransformer(img_size=32, embed_dim=32, depth=1, num_heads=4))
    assert square["img_size"] == 32 and square["in_chans"] == 3


def test_overrides_do_not_change_the_registered_info():
    # model_info describes the registered configuration, not the last model someone built with overrides.
    before = st.model_info("sdt_2_256_cifar10")
    st.create_model("sdt_2_256_cifar10", num_classes=3, embed_dim=32, num_heads=4, depth=1, T=2)
    assert st.model_info("sdt_2_256_cifar10") == before and before.num_classes == 10 and before.default_T == 4
