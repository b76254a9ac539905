"""Faults: small classes with describe(), inject() and revert(), found through entry points."""
