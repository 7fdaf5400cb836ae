"""Print the README's model table (markdown) from the registry.

Parity status comes from PARITY_FIXTURES: the official families whose fixtures in ../shared/fixtures/official and
../shared/fixtures/wave2 the test suite checks (logits 1e-9, exact spike counts, gradients 1e-8).
"""

from __future__ import annotations

import spiking_transformers as st

PARITY_FIXTURES = {
    "spikformer": "spikformer_cifar_small",
    "spikformer_dvs": "spikformer_cifar10dvs_small",
    "sdt": "sdt_cifar_small, sdt_cifar10dvs_small",
    "statten": "statten_cifar_small",
    "sdt_v2": "sdtv2_small",
    "qsd": "qsd_small",
    "sdt_v3_base": "sdtv3_base_small",
    "sdt_v3_large": "sdtv3_large_small",
    "qkformer": "qkformer_cifar_small",
    "tim": "tim_dvs_small",
    "stmixer": "stmixer_cifar_small",
    "spikeformer_li": "spikeformer_li_dvs_small",
    "revsformer": "revsformer_cifar_small",
    "mst": "mst_snn_small",
    "stnet": "stnet_small",
}


def main() -> None:
    print("| model | family | task | params | T | input | spike-driven | paper | top-1 (reported) | official parity |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in st.list_models():
        i = st.model_info(name)
        fam = i.official_family
        if fam in PARITY_FIXTURES:
            status = f"verified (`{fam}`: {PARITY_FIXTURES[fam]})"
        elif fam:
            status = f"same code path as `{fam}`, no fixture"
        elif i.family in PARITY_FIXTURES:
            status = f"`{i.family}` blocks (verified); this configuration has no official port"
        else:
            status = "paper only (no official code)"
        top1 = f"{i.reported_top1:.2f} ({i.dataset})" if i.reported_top1 is not None else f"— ({i.dataset})"
        sd = "yes" if i.spike_driven else "no"
        print(f"| `{name}` | {i.family} | {i.task} | {i.params / 1e6:.2f}M | {i.default_T} | {i.input_kind} | {sd} | "
              f"{i.paper.title[:40]}{'…' if len(i.paper.title) > 40 else ''} ({i.paper.venue} {i.paper.year}) | "
              f"{top1} | {status} |")


if __name__ == "__main__":
    main()
