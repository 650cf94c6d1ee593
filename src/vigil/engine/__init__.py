"""The many-model engine: partitioning, the pure per-partition function, the local pool."""
