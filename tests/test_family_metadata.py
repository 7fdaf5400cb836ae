"""Registry metadata of the finished families is consistent, and the official-kwargs builders take exactly the
official constructors' arguments."""

from __future__ import annotations

import inspect

import pytest

import spiking_transformers as st
from spiking_transformers.models import get_official_family
from spiking_transformers.models._common import REQUIRED, official_builder

FAMILIES = ("spikformer", "sdt", "statten", "qkformer", "sdt_v3")
DATASETS = {"cifar10", "cifar100", "imagenet", "cifar10-dvs", "dvs128-gesture", "n-caltech101", "n-mnist"}
ARXIV = {"spikformer": "2209.15425", "sdt": "2307.01694", "qkformer": "2403.16552", "statten": "2409.19764"}
VARIANTS = [n for n in st.list_models() if st.model_info(n).family in FAMILIES]


@pytest.mark.parametrize("name", VARIANTS)
def test_registry_metadata_is_consistent(name):
    info = st.model_info(name)
    assert info.dataset in DATASETS, f"{name}: dataset {info.dataset!r} is not one of the library's names"
    events = {"cifar10-dvs", "dvs128-gesture", "n-caltech101", "n-mnist"}
    assert (info.input_kind == "events") == (info.dataset in events)
    assert info.official_config and info.official_family, f"{name}: official_family missing"
    family = get_official_family(info.official_family)
    assert info.paper.commit and info.paper.commit in family.source
    assert info.paper.repo and info.paper.repo.split("/")[0] in family.source
    assert info.paper.arxiv == ARXIV.get(info.family, info.paper.arxiv)
    if info.reported_top1 is not None:
        assert 0 < info.reported_top1 < 100


def test_official_builder_takes_exactly_the_official_arguments():
    @official_builder(dict(depths=REQUIRED, embed_dims=8, drop_rate=0.0))
    def build(*, depths: int, embed_dims: int, **ignored) -> tuple:
        return depths, embed_dims, ignored

    assert list(inspect.signature(build).parameters) == ["depths", "embed_dims", "drop_rate"]
    assert build(depths=2) == (2, 8, {"drop_rate": 0.0})
    with pytest.raises(TypeError, match="unexpected keyword argument 'embed_dim'"):
        build(depths=2, embed_dim=8)
    with pytest.raises(TypeError, match="missing a required argument: 'depths'"):
        build()


@pytest.mark.parametrize("family", ["spikformer", "spikformer_imagenet", "spikformer_dvs", "sdt", "statten",
                                    "qkformer", "qkformer_imagenet", "qkformer_dvs", "sdt_v3_base", "sdt_v3_large"])
def test_official_families_expose_the_official_signature(family):
    params = inspect.signature(get_official_family(family).build).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    pvt = {"img_size_h", "img_size_w", "patch_size", "in_channels", "num_classes", "qkv_bias", "drop_rate"}
    assert pvt <= set(params)
