"""The pipeline's stages, one command module each (prefill, collect, train, evaluate, pretrain), and what the training stages share."""
