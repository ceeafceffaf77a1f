"""Experience storage, sampling and interop. Imports no neural-network code."""
