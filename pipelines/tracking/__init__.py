"""Metrics of every stage (metrics.jsonl, TensorBoard) and the experiment-tracker backends."""
