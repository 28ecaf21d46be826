"""Implementation of :mod:`compiler.runtime` (upstream ``vta/runtime/runtime.cc``), one idea a module."""
