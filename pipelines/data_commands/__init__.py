"""Commands over experience stores and foreign datasets: inspect, stats, verify, HDF5/Minari and DQN Replay imports."""
