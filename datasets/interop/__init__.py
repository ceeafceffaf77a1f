"""Experience in other formats: HDF5 and Minari export and import (`hdf5`, with the checked reading of
untrusted files in `hdf5_reading` and Minari's conventions in `minari_spec`), and the DQN Replay
Dataset's import (`dqn_replay`)."""
