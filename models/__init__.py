"""DreamerV2 networks, losses and the agent. Imports neither `datasets` nor `pipelines`."""
