"""Root test configuration: skip the doctests of adapters whose framework is not installed."""

import importlib.util

collect_ignore_glob = [
    f"berry/{adapter}/*"
    for adapter, module in (("torch", "torch"), ("jax", "jax"), ("keras", "keras"))
    if importlib.util.find_spec(module) is None
]
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob.append("docs/probe.md")  # its doctests probe a torch model too
