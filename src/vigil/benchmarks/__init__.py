"""Benchmarks: M4 Hourly accuracy (:mod:`vigil.benchmarks.m4`) and per-series CPU cost
(:mod:`vigil.benchmarks.speed`)."""
