"""The environments, each behind the collectors' vector interface (`reset`, `step` -> `Step`): Atari (ale-py),
the DeepMind Control Suite (dm_control), Catch (the learning test's tiny game); `registry` maps names to them."""
