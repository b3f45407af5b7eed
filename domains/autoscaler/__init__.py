"""The autoscaler: balloon first, migrate second, and say why.

The engine (`snapshot`, `controller`, `planner`, `whatif`, `consolidate`) is pure: plain dataclasses in, a Plan
out, no I/O and no Django imports, so that it can be unit-tested on hand-made snapshots and benchmarked on
20,000 domains. The Django side (`models`, `state`, `run`) reads the database into a snapshot and applies or
stores the plan. Nothing is imported here, so that importing the engine never loads Django.
"""
