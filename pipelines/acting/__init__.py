"""An agent in an environment: the policy interface, the collection loop, the online learner-collector link, episode videos."""
