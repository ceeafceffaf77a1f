"""Scores: evaluation inputs, human-normalised aggregates, robust statistics, plots, reports and DreamerV2's published curves."""
