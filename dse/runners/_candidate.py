"""What a runner measures: one layer on one hardware config under one knob set (the builder's side).

The op library (``compiler.workloads``) makes everything here; nothing is built until a runner
asks: the ``env`` (a hardware config that cannot be built raises ``hwconfigs.ConfigError`` then),
the static check, the compiled ``module`` and the inputs of a bit-exact run. A candidate pickles
without what it built (the module stays in the process that built it).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any


def env_of(hw):
    """The Env of ``hw`` (an Env, a HwConfig, its dict or (key, value) pairs); raises
    ``hwconfigs.ConfigError`` when VTA cannot be built so."""
    import hwconfigs

    if isinstance(hw, hwconfigs.Env):
        return hw
    cfg = hw if isinstance(hw, hwconfigs.HwConfig) else hwconfigs.HwConfig.from_dict(dict(hw))
    return hwconfigs.get_env(cfg)


@dataclasses.dataclass
class Candidate:
    layer: Any                 # a compiler.workloads layer (Conv2D, Dense, Elementwise)
    hw: Any                    # hwconfigs.HwConfig, its dict or sorted (key, value) pairs, or an Env
    knobs: Any = None          # the schedule knobs (None: AutoTVM's fallback)
    seed: int = 0              # inputs of a bit-exact run

    @functools.cached_property
    def env(self):
        """The hardware's Env; raises ``hwconfigs.ConfigError`` when VTA cannot be built so."""
        return env_of(self.hw)

    def check(self) -> None:
        """Raises ``compiler.CompileError`` when the knobs cannot fit (no compile)."""
        from compiler import workloads

        workloads.check_knobs(self.layer, self.env, self.knobs)

    @functools.cached_property
    def module(self):
        """The compiled ``compiler.Module`` (arguments: the inputs, then the output)."""
        from compiler import workloads

        return workloads.build(self.layer, env=self.env, knobs=self.knobs)

    def inputs(self) -> list:
        """The packed random inputs of a bit-exact run (``seed``)."""
        from compiler import workloads

        return workloads.random_inputs(self.layer, self.env, self.seed, self.knobs)

    def reference(self, inputs):
        """What the output must be: numpy's answer on ``inputs``."""
        from compiler import workloads

        return workloads.reference(self.layer, *inputs, env=self.env)

    def empty_output(self):
        from compiler import workloads

        return workloads.empty_output(self.layer, self.env)

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
