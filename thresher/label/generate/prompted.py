"""A prompted LF from a few labelled records: the LM's answer bias is corrected and the margin chosen on them.

The prompt (default :data:`thresher.lm.prompt.DEFAULT_TEMPLATE`, "<record> This text is about", continued by the
class names) is asked about every dev record. The per-class ``bias`` is then fitted so that the LF's mean posterior
over the dev records matches their class frequencies (add-one smoothed), which removes the LM's preference for some
answers whatever the record (the intercept-only form of calibrating a prompted classifier; Zhao et al. 2021 do it
without labels). The margin is the one of :data:`MARGINS` (nats) with the best lower-bound precision × coverage on
dev among those clearly above chance (:func:`choose_margin`); with none, the LF is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from thresher.errors import ConfigError
from thresher.label.generate.generated import GeneratedLF, choose_margin
from thresher.label.prompted import PromptLF

MARGINS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # nats
_BIAS_ROUNDS = 500


def default_answers(classes: Sequence[str], chat: bool = False) -> dict[str, list[str]]:
    """Each class's name as its answer, as written and capitalised; after a space when the answer continues plain
    text (the default), without when it starts a chat assistant's turn."""
    lead = "" if chat else " "
    return {c: list(dict.fromkeys(lead + w for w in (c, c[:1].upper() + c[1:]))) for c in classes}


def fit_bias(raw: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class offsets making the mean softmax(raw + bias) over the rows equal the (add-one smoothed) class
    frequencies of ``y``: iterative proportional fitting, the first class's offset fixed at 0."""
    target = (np.bincount(y, minlength=n_classes) + 1.0) / (len(y) + n_classes)
    bias = np.zeros(raw.shape[1])
    for _ in range(_BIAS_ROUNDS):
        z = raw + bias
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        step = np.log(target) - np.log(p.mean(axis=0))
        bias += step - step[0]
        if np.abs(step - step[0]).max() < 1e-9:
            break
    return bias


def generate_prompt_lf(texts: Sequence[str], y: Sequence[int], classes: Sequence[str], prompt: str | None = None,
                       answers: Mapping[str, Sequence[str] | str] | None = None, model: str = "smollm2",
                       chat: bool = False, z: float = 1.0, name: str = "prompt",
                       cache: bool | str | os.PathLike = True) -> GeneratedLF:
    """A :class:`PromptLF` whose bias and margin come from the labelled dev records (see the module docs).
    ``answers``: class -> answer words; a class without them is answered by its name (:func:`default_answers`)."""
    from thresher.lm.prompt import DEFAULT_TEMPLATE

    unknown = sorted(set(answers or {}) - set(classes))
    if unknown:
        raise ConfigError(f"answers for {', '.join(unknown)}, which are not classes ({', '.join(classes)})")
    answers = {**default_answers(classes, chat), **(answers or {})}
    lf = PromptLF(name, prompt or DEFAULT_TEMPLATE, answers, model=model, chat=chat, cache=cache)
    y = np.asarray(y, dtype=np.int64)
    raw = lf.raw_scores(texts)  # columns in class order: every class has answers
    bias = fit_bias(raw, y, len(classes))
    lf.bias = {c: round(float(b), 4) for c, b in zip(lf.answers, bias)}  # as written, so the dev numbers hold
    _, votes, right = choose_margin(lf, lf.scores_of(raw), lf.class_indices(classes), y, z, MARGINS)
    return GeneratedLF(lf, None, votes, right, len(y), None)
