"""Hardware parameter sets of VTA: upstream-compatible JSON configs, presets and derived values."""
from ._config import FIELDS, ConfigError, HwConfig, preset_names, resolve_config
from ._env import FPGA_TARGETS, Env, FpgaTarget, get_env
from ._isa_layout import FieldLayout, IsaLayout, isa_layout, log_depths
from ._timing import TIMING_KEYS, TimingParams
from ._resources import CAPACITIES, Capacity, Resources, capacity_of, estimate_resources

__all__ = ["CAPACITIES", "Capacity", "ConfigError", "Env", "FIELDS", "FieldLayout", "FpgaTarget", "FPGA_TARGETS",
           "HwConfig", "IsaLayout", "Resources", "TIMING_KEYS", "TimingParams", "capacity_of", "estimate_resources", "get_env", "isa_layout",
           "log_depths", "preset_names", "resolve_config"]
