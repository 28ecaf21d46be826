"""The VTA lowering passes, each a function ``(stmt, ctx) -> stmt``."""
