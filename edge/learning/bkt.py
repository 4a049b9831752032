"""Bayesian Knowledge Tracing for knowledge points the network does not cover.

Four numbers a teacher can read: the chance a student knows the point before
practice (prior), of learning it at each attempt (learn), of answering right
without knowing it (guess), of answering wrong while knowing it (slip). The
values come from the model manifest, fitted on the same training data as the
network (``models/kt/train.py``).
"""

from __future__ import annotations

from edge.learning.kt_model import BktParams


def update(p_known: float, correct: bool, bkt: BktParams) -> float:
    """P(known) after one answer (Bayes on the answer, then one chance to learn)."""
    if correct:
        num = p_known * (1 - bkt.slip)
        post = num / (num + (1 - p_known) * bkt.guess)
    else:
        num = p_known * bkt.slip
        post = num / (num + (1 - p_known) * (1 - bkt.guess))
    return post + (1 - post) * bkt.learn


def success(p_known: float, bkt: BktParams) -> float:
    """Probability the next answer on this point is right."""
    return p_known * (1 - bkt.slip) + (1 - p_known) * bkt.guess
