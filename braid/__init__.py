"""The seed's documented namespace: ``braid.berry.initializations`` is :mod:`berry.initializations`."""
