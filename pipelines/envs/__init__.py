"""The environments, each behind the collectors' vector interface (`reset`, `step` -> `Step`): Atari (ale-py), Catch (the learning test's tiny game)."""
