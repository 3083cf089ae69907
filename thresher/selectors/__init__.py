"""Selectors: given a score table and a budget, return the chosen record indices, best (or first drawn) first."""

from thresher.selectors.base import SELECTORS, Selector, make_selector
from thresher.selectors.budget import Budget

__all__ = ["Budget", "Selector", "SELECTORS", "make_selector"]
