"""Scorers turn records into side-car score columns keyed by record id."""
