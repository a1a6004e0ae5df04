"""Reading Pyro traces: which sample sites of a traced model are its latent variables.

Guides discover a model's weight sites from one trace, the samplers take their state from it,
and the ArviZ export names the posterior's variables after it; all of them use
:func:`latent_nodes`, so they agree on what a latent site is.
"""

from __future__ import annotations

__all__ = ["latent_nodes"]


def latent_nodes(trace):
    """(name, node) of every latent sample site of a Pyro trace: not observed, not auxiliary,
    not a plate's subsample site."""
    for name, node in trace.nodes.items():
        if node["type"] != "sample" or node["is_observed"] or node["infer"].get("is_auxiliary"):
            continue
        if type(node["fn"]).__name__ == "_Subsample":
            continue
        yield name, node
