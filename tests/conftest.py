"""Shared test setup."""

import os

# Keras 3 defaults to TensorFlow, which berry's test extras do not install; every test that imports
# keras (directly or through berry.keras) sees the same backend.
os.environ.setdefault("KERAS_BACKEND", "jax")
