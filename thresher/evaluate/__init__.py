"""Evaluation: how a selection compares with the target and with random selection at the same budget."""
