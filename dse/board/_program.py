"""What a board request carries, and how the board runs it.

Client side, ``module_request`` turns a ``compiler.Module`` and its arrays into a request: each
program's 128-bit instruction stream and uop words with the address of its uop staging buffer,
every argument buffer's DRAM image at its physical address, the module's DRAM size and the
hardware config. Addresses are the module's own (``compiler`` lays buffers out from 0x1000).

Board side, ``execute`` runs it through the device-driver interface: one physically contiguous
buffer holds the module's whole DRAM image; the instruction streams are *relocated* to it
(every LOAD/STORE ``dram_base`` shifted by the buffer's address, in element units) after every
access is checked to stay inside the image — a program can never make the device read or write
memory outside what the request was given — then, program after program, the uops are copied
into the staging area, the stream into an instruction buffer, and ``run_instructions`` runs it.
"""
from __future__ import annotations

import numpy as np

from ._device import Device, run_instructions
from ._errors import DeviceError, ProtocolError

INSN_BYTES = 16
DEVICE_TIMEOUT_S = 600.0      # a device that never reads done releases the board after this (no timeout asked)


# ---- client side -----------------------------------------------------------------------------

def module_request(module, arrays) -> tuple[dict, dict[str, np.ndarray]]:
    """(header fields, blobs) of a run of ``module`` on ``arrays`` (bound as ``simulator.run``
    binds them; SimulationError names a wrong one)."""
    from simulator._run import _check_binding, _device_bytes

    bound = _check_binding(module, arrays)
    blobs, programs, buffers = {}, [], []
    for index, program in enumerate(module.programs):
        blobs[f"insns{index}"] = stream_bytes(program)
        blobs[f"uops{index}"] = program.uops.astype(np.uint32)
        programs.append({"insns": f"insns{index}", "uops": f"uops{index}", "uop_base": program.uop_base})
    for index, (arg, array) in enumerate(zip(module.args, bound)):
        blobs[f"arg{index}"] = _device_bytes(arg, array)
        buffers.append({"name": arg.name, "phys_addr": arg.phys_addr, "nbytes": arg.nbytes,
                        "output": bool(arg.is_output), "data": f"arg{index}"})
    header = {"kind": "run", "config": module.env.cfg.to_dict(), "module": module.name,
              "dram_size": module.dram_size, "programs": programs, "buffers": buffers}
    return header, blobs


def stream_bytes(program) -> np.ndarray:
    """``program.to_bytes()`` as uint8, encoded a field at a time over all instructions (the
    per-object encoder costs ~25 us an instruction: seconds for a large layer); the objects'
    values come from the simulator's column extraction, the bit positions from ``env.isa``."""
    from compiler import isa
    from simulator._decode import COL, columns_from_objects

    insns = program.instructions
    table, _ = columns_from_objects(insns)
    if table is None:             # objects the column path does not take: the reference encoder
        return np.frombuffer(program.to_bytes(), dtype=np.uint8)
    layouts = program.env.isa
    header = {"opcode", "pop_prev_dep", "pop_next_dep", "push_prev_dep", "push_next_dep"}
    kinds = {isa.MemInsn: layouts.mem.fields, isa.GemmInsn: layouts.gemm.fields, isa.AluInsn: layouts.alu.fields,
             isa.FinishInsn: [f for f in layouts.gemm.fields if f[0] in header]}
    types = np.array([list(kinds).index(t) for t in map(type, insns)], dtype=np.int64)
    words = np.zeros((len(insns), 2), dtype=np.uint64)
    for key, fields in enumerate(kinds.values()):
        rows = np.flatnonzero(types == key)
        if not rows.size:
            continue
        for name, lsb, width in fields:
            values = table[COL[isa._attr(name)], rows] & ((1 << width) - 1)   # truncated, as isa.encode
            _set_fields(words, rows, lsb, width, values)
    return words.reshape(-1).view(np.uint8)


def unpack_outputs(module, arrays, reply_blobs: dict[str, np.ndarray]) -> None:
    """Copy the reply's output images into the output arrays, in place (as ``simulator.run``)."""
    from simulator._run import _host_values

    for index, (arg, array) in enumerate(zip(module.args, arrays)):
        if arg.is_output:
            raw = reply_blobs.get(f"arg{index}")
            if raw is None or raw.dtype != np.uint8 or raw.shape != (arg.nbytes,):
                raise ProtocolError("malformed", f"the reply lacks output {arg.name!r} as {arg.nbytes} bytes")
            array[...] = _host_values(arg, raw, array)


# ---- board side ------------------------------------------------------------------------------

def _bad(message: str):
    return ProtocolError("malformed", message)


def _int(header: dict, key: str, low: int = 0, high: int = 1 << 40) -> int:
    value = header.get(key)
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{key!r} must be a whole number in [{low}, {high}], got {str(value)[:40]}")
    return value


def _blob(blobs: dict, name, dtype, what: str) -> np.ndarray:
    array = blobs.get(name) if isinstance(name, str) else None
    if array is None or array.dtype != np.dtype(dtype) or array.ndim != 1:
        raise _bad(f"{what}: expected the name of a 1-D {dtype} blob, got {str(name)[:40]!r}")
    return array


def parse_request(header: dict, blobs: dict) -> dict:
    """The request's fields, checked (ProtocolError "malformed" names the first bad one)."""
    if not isinstance(header.get("config"), dict):
        raise _bad("'config' must be a hardware config object")
    dram_size = _int(header, "dram_size", 1)
    programs, buffers = header.get("programs"), header.get("buffers")
    if not isinstance(programs, list) or not programs:
        raise _bad("'programs' must be a non-empty list")
    if not isinstance(buffers, list):
        raise _bad("'buffers' must be a list")
    parsed_programs = []
    for index, entry in enumerate(programs):
        what = f"program {index}"
        if not isinstance(entry, dict):
            raise _bad(f"{what}: expected an object")
        insns = _blob(blobs, entry.get("insns"), np.uint8, f"{what} 'insns'")
        uops = _blob(blobs, entry.get("uops"), np.uint32, f"{what} 'uops'")
        if not len(insns) or len(insns) % INSN_BYTES:
            raise _bad(f"{what}: {len(insns)} instruction bytes, expected a positive multiple of {INSN_BYTES}")
        uop_base = _int(entry, "uop_base", 0, dram_size)
        if uop_base % 4 or uop_base + 4 * len(uops) > dram_size:
            raise _bad(f"{what}: uops at [{uop_base:#x}, {uop_base + 4 * len(uops):#x}) are not word-aligned "
                       f"inside the {dram_size:#x}-byte DRAM image")
        parsed_programs.append((insns, uops, uop_base))
    parsed_buffers = []
    for index, entry in enumerate(buffers):
        what = f"buffer {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _bad(f"{what}: expected an object with a name")
        phys, nbytes = _int(entry, "phys_addr", 0, dram_size), _int(entry, "nbytes", 0, dram_size)
        data = _blob(blobs, entry.get("data"), np.uint8, f"{what} 'data'")
        if len(data) != nbytes or phys + nbytes > dram_size or type(entry.get("output")) is not bool:
            raise _bad(f"{what} ({entry['name'][:40]!r}): {len(data)} data bytes for {nbytes} at {phys:#x} in a "
                       f"{dram_size:#x}-byte image, with a boolean 'output'")
        parsed_buffers.append((entry["data"], phys, data, entry["output"]))
    timeout = header.get("timeout_s")
    if timeout is not None and (type(timeout) not in (int, float) or not timeout > 0):
        raise _bad(f"'timeout_s' must be a positive number or null, got {str(timeout)[:40]}")
    return {"config": header["config"], "dram_size": dram_size, "programs": parsed_programs,
            "buffers": parsed_buffers, "timeout_s": timeout}


def _fields(words: np.ndarray, lsb: int, width: int) -> np.ndarray:
    """Field (lsb, width) of 128-bit words held as (n, 2) little-endian uint64 halves."""
    mask = np.uint64((1 << width) - 1)
    lo, hi = words[:, 0], words[:, 1]
    if lsb >= 64:
        return (hi >> np.uint64(lsb - 64)) & mask
    value = lo >> np.uint64(lsb)
    if lsb + width > 64:
        value = value | (hi << np.uint64(64 - lsb))
    return value & mask


def _set_fields(words: np.ndarray, rows: np.ndarray, lsb: int, width: int, values: np.ndarray) -> None:
    """Write ``values`` into field (lsb, width) of the given rows of (n, 2) uint64 words."""
    values = values.astype(np.uint64)
    if lsb + width <= 64 or lsb >= 64:
        half, shift = (0, lsb) if lsb < 64 else (1, lsb - 64)
        mask = np.uint64(((1 << width) - 1) << shift)
        words[rows, half] = (words[rows, half] & ~mask) | ((values << np.uint64(shift)) & mask)
        return
    low_bits = 64 - lsb                       # the field straddles the two halves
    low_mask, high_mask = np.uint64(((1 << low_bits) - 1) << lsb), np.uint64((1 << (width - low_bits)) - 1)
    words[rows, 0] = (words[rows, 0] & ~low_mask) | ((values << np.uint64(lsb)) & low_mask)
    words[rows, 1] = (words[rows, 1] & ~high_mask) | ((values >> np.uint64(low_bits)) & high_mask)


def relocate(insns: np.ndarray, env, base: int, dram_size: int) -> np.ndarray:
    """The instruction stream with every LOAD/STORE that touches DRAM moved by ``base`` bytes,
    after checking it stays inside the image [0, dram_size). ``base`` must be a multiple of every
    element size (the caller aligns the image)."""
    from compiler import isa

    words = insns.view("<u8").reshape(-1, 2).copy()
    layout = dict((name, (lsb, width)) for name, lsb, width in env.isa.mem.fields)
    opcode = _fields(words, *layout["opcode"])
    mem = np.flatnonzero((opcode == isa.LOAD) | (opcode == isa.STORE))
    sub = words[mem]
    get = {name: _fields(sub, *layout[name]).astype(np.int64)
           for name in ("memory_type", "dram_base", "y_size", "x_size", "x_stride")}
    touches = (get["x_size"] > 0) & (get["y_size"] > 0)
    elem = np.full(8, -1, np.int64)
    for mtype in isa.MEM_NAMES:
        elem[mtype] = isa.elem_bytes(env, mtype)
    unit = elem[get["memory_type"]]
    unit = np.where(opcode[mem] == isa.STORE, env.OUT_ELEM_BYTES, unit)
    bad = touches & (unit < 0)
    if bad.any():
        i = int(mem[np.flatnonzero(bad)[0]])
        raise _bad(f"instruction {i}: LOAD of unknown memory type {int(get['memory_type'][np.flatnonzero(bad)[0]])}")
    start = get["dram_base"] * unit
    end = start + ((get["y_size"] - 1) * get["x_stride"] + get["x_size"]) * unit
    outside = touches & ((end > dram_size) | (start < 0))
    if outside.any():
        j = int(np.flatnonzero(outside)[0])
        raise _bad(f"instruction {int(mem[j])} accesses DRAM bytes [{int(start[j]):#x}, {int(end[j]):#x}) outside "
                   f"the {dram_size:#x}-byte image the request gave")
    moved = np.flatnonzero(touches)
    if base % int(unit[moved].max(initial=1)):
        raise DeviceError(f"image at {base:#x} is not aligned to {int(unit[moved].max())} B elements")
    new_base = get["dram_base"][moved] + base // unit[moved]
    lsb, width = layout["dram_base"]
    if (new_base >= 1 << width).any():
        raise DeviceError(f"relocated DRAM address beyond the {width}-bit dram_base field (image at {base:#x})")
    _set_fields(words, mem[moved], lsb, width, new_base)
    return words.reshape(-1).view(np.uint8)


def _align(env) -> int:
    from compiler import isa

    return max(isa.elem_bytes(env, mtype) for mtype in isa.MEM_NAMES)


def execute(device: Device, request: dict) -> dict:
    """Run a parsed request on ``device``: {"outputs": {blob name: bytes}, "stats", "cycles",
    "wall_s"}. DeviceError for what the device refuses or fails, ProtocolError for a program
    that would leave its image."""
    env = device.env_for(request["config"])
    device.begin()
    dram_size, align = request["dram_size"], _align(env)
    buffers = []
    try:
        image = device.allocate(dram_size + align)
        buffers.append(image)
        offset = -image.phys_addr % align
        base = image.phys_addr + offset
        view = image.array[offset:offset + dram_size]
        view[...] = 0
        for _name, phys, data, _output in request["buffers"]:
            view[phys:phys + len(data)] = data
        streams = [relocate(insns, env, base, dram_size) for insns, _uops, _ub in request["programs"]]
        insn_buf = device.allocate(max(len(s) for s in streams))
        buffers.append(insn_buf)
        totals, cycles, wall = {}, 0, 0.0
        for stream, (_insns, uops, uop_base) in zip(streams, request["programs"]):
            view[uop_base:uop_base + 4 * len(uops)] = uops.view(np.uint8)
            image.flush()
            insn_buf.array[:len(stream)] = stream
            insn_buf.flush()
            wall += run_instructions(device, insn_buf.phys_addr, len(stream) // INSN_BYTES,
                                     request["timeout_s"] or DEVICE_TIMEOUT_S)
            stats, run_cycles = device.last_counters()
            if stats is None:
                totals, cycles = None, None
            elif totals is not None:
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0) + int(value)
                cycles += int(run_cycles)
        image.invalidate()
        outputs = {name: view[phys:phys + len(data)].copy() for name, phys, data, output in request["buffers"]
                   if output}
    finally:
        for buf in buffers:
            buf.free()
    return {"outputs": outputs, "stats": totals, "cycles": cycles, "wall_s": wall}
