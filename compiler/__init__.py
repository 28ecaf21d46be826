"""The VTA compiler: tensor expressions, schedules, lowering passes, the ISA and modules.

``compiler.te`` declares computations, ``compiler.lower`` shows the lowered IR,
``compiler.build`` produces a :class:`Module` holding the complete instruction stream.
"""
from . import te, topi
from .build import build
from .ir import CompileError
from .lower import lower
from .module import Module, load

__all__ = ["CompileError", "Module", "build", "load", "lower", "te", "topi"]
