"""Aioli (Chen et al., 2024) and Skill-It (Chen et al., 2023) with an online proxy (n-gram or tiny_lm):
``thresher mix --pool ... --target ... --method aioli|skillit``.

Both are linear mixing optimisation: over one round of training, the target losses fall by about ``A p`` (``A``: a
column per group, how much a chunk of that group alone lowers each target's loss; ``p``: the mixture). Each of
``steps`` rounds:

1. train the proxy on a chunk of ``proxy_tokens / steps`` tokens drawn by the current ``p``;
2. estimate ``A`` by one sweep per group: what one more chunk of that group alone would do to each target's loss
   (:meth:`~thresher.mix.online.OnlineNgram.probe`; the proxy is not trained on it). Aioli re-estimates ``A``
   every round; Skill-It estimates it once, after the first round, and keeps it (its skills graph);
3. move ``p`` by exponentiated gradient on the blended gain ``g = A^T w`` (``w``: the target weights), scaled to
   ``max |g| = 1`` so that ``eta`` bounds a round's step: ``p <- p exp(eta g)``, normalised, smoothed toward
   uniform.

The answer is ``p`` averaged over the rounds it trained on; the trajectory (weights, gains, target losses per
round) is kept. ``p`` starts uniform, as in both papers.
"""

from __future__ import annotations

import numpy as np

from thresher.engine.plan import MAP, Plan, Stage, Values
from thresher.mix.doremi import STREAMS, exponentiated_step
from thresher.mix.online import OnlineSpec, Stream, streams_and_evals
from thresher.mix.proxy import GATHER, INDEX, TARGETS

ONLINE_METHODS = ("aioli", "skillit")


def interaction_run(streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]], target_weights: np.ndarray,
                    spec: OnlineSpec, seed: int, steps: int, proxy_tokens: float, eta: float, smoothing: float,
                    refresh: bool) -> dict:
    """Engine task: ``steps`` rounds of training, sweeps and exponentiated-gradient updates (``refresh``: estimate
    the interaction matrix every round (Aioli) or once (Skill-It)). Per round: the weights it trained on, the
    target losses after it, the interaction matrix used, the gain per group and the updated weights."""
    proxy = spec.build(streams, evals, steps, seed)
    k = len(streams)
    weights = np.full(k, 1.0 / k)
    chunk = proxy_tokens / steps
    interactions = None
    rows: list[dict] = []
    for step in range(steps):
        proxy.train_to(weights, chunk * (step + 1))
        losses = proxy.losses()
        if interactions is None or refresh:
            interactions = np.column_stack([losses - proxy.probe(j, chunk) for j in range(k)])
        gain = target_weights @ interactions
        scale = np.abs(gain).max()
        updated = exponentiated_step(weights, gain / scale if scale > 0 else gain, eta, smoothing)
        rows.append({"step": step, "weights": weights.copy(), "losses": losses, "tokens": proxy.used.copy(),
                     "interactions": interactions.copy(), "gain": gain, "updated": updated})
        weights = updated
    return {"steps": rows}


def _online(v: Values) -> dict:
    s, o = v.settings, v.online
    streams, evals, vocab_size = streams_and_evals(v, [], list(v.target_sets))
    weights = np.array([t.weight for t in v.targets])
    spec = OnlineSpec(s.proxy, s.order, vocab_size, s.tiny)
    args = (streams, evals, weights, spec, v.seed, o["steps"], s.proxy_tokens, o["eta"], o["smoothing"],
            o["method"] == "aioli")
    rows = next(iter(v.engine.map(interaction_run, [args])))["steps"]
    return {"online_steps": rows, "weights": np.mean([r["weights"] for r in rows], axis=0),
            "proxy_spec": spec}


ONLINE = Stage("online", MAP, "one engine task: the online proxy trained round by round on the current mixture, "
               "one sweep per group estimating how each lowers the target losses, exponentiated-gradient updates",
               _online, ("engine", "draws", "needed", "needed_hashes", "needed_offsets", "tokens_of", "target_sets",
                         "targets", "settings", "seed", "online"),
               ("online_steps", "weights", "proxy_spec"))
ONLINE_PLAN = Plan("mix --method aioli", ("pool", "group_field", "engine", "targets", "settings", "seed", "online"),
                   (INDEX, TARGETS, STREAMS, GATHER, ONLINE))
