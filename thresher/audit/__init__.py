"""Curating labelled data: out-of-sample probabilities, label quality and label issues (``thresher audit``)."""
