"""Metrics over per-sample predictions (pure numpy; never torch)."""
