"""Lowering: schedule → loop nest → VTA passes → (at build) runtime calls."""
from .pipeline import PASSES, LoweredFunc, lower

__all__ = ["PASSES", "LoweredFunc", "lower"]
