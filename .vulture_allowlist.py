# What vulture (tests/test_dead_code.py) cannot see used, each with the reason. Keep it short: an
# entry here keeps a name alive everywhere, so prefer deleting dead code to listing it. The click
# commands that pipelines/cli.py loads by their "module:attribute" strings are added by the test.
# ruff: noqa
_ = object()

# Frameworks call these.
_.forward  # torch.nn.Module.__call__ calls forward
_.format_commands  # click.Group calls it to print --help (pipelines/cli.py overrides it)
_.writable  # io.RawIOBase protocol: h5py writes through the file object (datasets/interop/hdf5.py)
_.seekable  # io.RawIOBase protocol, likewise
_.exc  # `def __exit__(self, *exc)`: the context-manager protocol passes the exception triple
_.benchmark  # torch.backends.cudnn.benchmark = True: a setting torch reads (models/captured_step.py)
_.allow_tf32  # torch.backends.cudnn.allow_tf32, likewise
_.fx_graph_cache  # torch._inductor.config, a setting torch reads (pipelines/stages/training.py)
_.enable_autograd_cache  # torch._functorch.config, likewise
