"""The serial framing protocol between a host and a convolution board.

Everything multi-byte is little-endian. A value of ``bits`` bits travels in ``ceil(bits/8)``
bytes: unsigned values zero-extended, signed values (signed pixels, coefficients, every output)
in two's complement, sign-extended. The board uses the low ``bits`` bits of what it receives.

Host to board, one frame::

    header   "C" "V" VERSION  width:u16  height:u16  spec_id:u32
             [coefficients: n x ceil(coeff_bits/8) bytes; runtime specs only: n = taps,
              row-major; a layer's n = spec.coefficient_addresses, one per coefficient-port
              address in address order, 0 where no weight maps]
             crc:u16 (CRC-16/CCITT-FALSE of every header byte before it)
    pixels   width*height x ceil(Cin*in_bits/8) bytes, row-major (only after the board
             accepted); a pixel is its stream beat, every channel, channel 0 lowest

Board to host::

    reject   "E" code:u8  width:u16  height:u16  spec_id:u32  timeout_us:u32   (the board's own)
    accept   "A" window:u32  timeout_us:u32
             out_h*out_w x ceil(Cout*out_bits/8) bytes of results, row-major (beats)
    trailer  status:u8  in_crc:u16  out_crc:u16

The header states the frame size and the spec it was made for (:func:`spec_id`), so a board built
for another spec rejects it instead of computing nonsense. The board checks each header byte as it
arrives and rejects at the first wrong one. After a reject, or a trailer whose status is not
``OK``, the board ignores its input until the line has been silent for its timeout, then waits
for a new header: a host resynchronizes by staying quiet that long. A frame whose input stops
for the timeout (no byte in either direction) is finished with zero pixels, so the host still
gets every result, and answered with status ``TIMEOUT``.

Flow control: the UART has none, so the host paces the pixels. It may send pixel ``n`` only once
it has received results showing that the board consumed pixel ``n - window``: result ``k`` proves
that the first :func:`pixels_needed` ``[k]`` pixels have been consumed. The board's receive FIFO
holds ``window`` pixels, so it never overflows; :func:`window_pixels` is the least window with
which a frame can make progress.

docs/boards.md describes the protocol for people.
"""

import binascii
import enum
import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAGIC", "VERSION", "ACCEPT", "REJECT", "Status",
    "HEADER_PREFIX_LEN", "ACCEPT_LEN", "REJECT_LEN", "TRAILER_LEN", "MAX_FIFO_BYTES",
    "crc16", "spec_id", "value_bytes", "encode_values", "decode_values",
    "pixel_bits", "result_bits", "pixel_bytes", "result_bytes", "coefficient_values",
    "header_prefix", "encode_header", "encode_pixels", "decode_results", "header_length",
    "pixels_needed", "window_pixels", "rx_fifo_depth",
    "Accept", "Reject", "Trailer", "decode_accept", "decode_reject", "decode_trailer",
    "encode_accept", "encode_reject", "encode_trailer",
]

MAGIC = b"CV"
VERSION = 1
ACCEPT = ord("A")
REJECT = ord("E")

HEADER_PREFIX_LEN = 11      # magic, version, width, height, spec_id
ACCEPT_LEN = 9
REJECT_LEN = 14
TRAILER_LEN = 5
#: Largest receive FIFO a board is built with; larger windows do not fit the FPGAs anyway.
MAX_FIFO_BYTES = 1 << 16


class Status(enum.IntEnum):
    """Reject codes and trailer statuses."""
    OK = 0
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_CRC = 3
    BAD_SIZE = 4
    BAD_SPEC = 5
    TIMEOUT = 6
    OVERFLOW = 7
    FRAMING = 8

    @property
    def meaning(self):
        return _MEANINGS[self]


_MEANINGS = {
    Status.OK: "frame processed",
    Status.BAD_MAGIC: "the header did not start with the magic bytes 'CV'",
    Status.BAD_VERSION: f"the header's protocol version is not {VERSION}",
    Status.BAD_CRC: "the header's CRC did not match (corrupted on the line?)",
    Status.BAD_SIZE: "the header's frame size differs from the one the board was built for",
    Status.BAD_SPEC: "the header's spec differs from the one the board was built for",
    Status.TIMEOUT: "the input stopped for longer than the board's timeout (truncated frame)",
    Status.OVERFLOW: "the board's receive FIFO overflowed, bytes were lost",
    Status.FRAMING: "the board's UART saw a bad stop bit (wrong baud rate or noise)",
}


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return binascii.crc_hqx(bytes(data), crc)


def _is_chain(spec):
    return hasattr(spec, "specs")


def spec_id(spec):
    """A 32-bit fingerprint of everything in ``spec`` that changes the bytes on the line.

    Hardware-only choices (``max_dsps``) and derived numbers (latency) are left out, so
    rebuilding a board with another convhw version keeps the same id. A chain's id covers
    every layer but not its folding (``pe``, ``simd``), which changes no byte on the line: a
    host needs the model, not the folding the board was built with.
    """
    if _is_chain(spec):
        layers = []
        for layer in spec.specs:
            fields = _line_fields(layer)
            for name in ("pe", "simd"):
                fields.pop(name, None)
            fields["operation"] = getattr(layer, "operation", "conv")
            layers.append(fields)
        return zlib.crc32(json.dumps({"chain": layers}, sort_keys=True).encode())
    return zlib.crc32(json.dumps(_line_fields(spec), sort_keys=True).encode())


def _line_fields(spec):
    fields = {
        "width": spec.width, "height": spec.height,
        "kernel": None if spec.kernel is None else [list(r) for r in spec.kernel],
        "kernel_shape": list(spec.kernel_shape), "stride": list(spec.stride),
        "padding": [list(p) for p in spec.padding], "dilation": list(spec.dilation),
        "in_bits": spec.in_bits, "in_signed": spec.in_signed, "coeff_bits": spec.coeff_bits,
        "flip": spec.flip, "shift": spec.shift if spec.requantize else None,
        "out_bits": spec.out_bits,
    }
    if getattr(spec, "is_layer", False):    # (single-channel specs: ids unchanged)
        fields.update({
            "in_channels": spec.in_channels, "out_channels": spec.out_channels,
            "groups": spec.groups, "pe": spec.pe, "simd": spec.simd,
            "weights": None if spec.weights is None else np.asarray(spec.weights).tolist(),
            "bias": [int(b) for b in spec.bias], "relu": bool(spec.relu),
            "scale": [str(v) for v in spec.scale], "rounding": str(spec.rounding),
            "clamp": None if spec.clamp is None else str(spec.clamp),
            "border": spec.border, "border_value": spec.border_value,
        })
    return fields


def value_bytes(bits):
    """Bytes on the line for one ``bits``-bit value: ``ceil(bits/8)``."""
    return (bits + 7) // 8


def encode_values(values, bits, is_signed, *, what="value"):
    """Little-endian bytes of integer ``values``, ``ceil(bits/8)`` each, range-checked."""
    flat = np.asarray(values).reshape(-1)
    if flat.size and flat.dtype.kind not in "iuO":
        raise TypeError(f"{what}s must be integers, not {flat.dtype} values")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    if flat.size:
        bad = np.flatnonzero((flat < lo) | (flat > hi))
        if bad.size:
            index = int(bad[0])
            raise ValueError(f"{what} {index} is {flat[index]}, which does not fit {bits}-bit "
                             f"{'signed' if is_signed else 'unsigned'} ({lo}..{hi})")
    nbytes = value_bytes(bits)
    if nbytes <= 7 and flat.dtype.kind in "iu":
        # Two's complement through uint64, then keep the low bytes of each little-endian word.
        words = flat.astype(np.int64).astype("<u8").view(np.uint8).reshape(-1, 8)
        return words[:, :nbytes].tobytes()
    mask = (1 << (8 * nbytes)) - 1
    return b"".join((int(v) & mask).to_bytes(nbytes, "little") for v in flat.tolist())


def decode_values(data, bits, *, is_signed=True):
    """Integers from ``ceil(bits/8)``-byte little-endian groups (the low ``bits`` bits)."""
    nbytes = value_bytes(bits)
    if len(data) % nbytes:
        raise ValueError(f"{len(data)} bytes is not a whole number of {nbytes}-byte values")
    if nbytes <= 7:
        groups = np.frombuffer(bytes(data), dtype=np.uint8).reshape(-1, nbytes)
        words = np.zeros((len(groups), 8), dtype=np.uint8)
        words[:, :nbytes] = groups
        values = words.view("<u8").reshape(-1).astype(np.int64) & ((1 << bits) - 1)
        if is_signed:
            values = values - ((values >> (bits - 1)) & 1) * (1 << bits)
        return values
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    values = []
    for offset in range(0, len(data), nbytes):
        value = int.from_bytes(data[offset:offset + nbytes], "little") & mask
        values.append(value - (value & sign) * 2 if is_signed else value)
    return np.array(values, dtype=object)


def _channels(spec):
    """``(Cin, Cout)``: the channels of one beat in and out (1, 1 for a single-channel spec)."""
    if getattr(spec, "is_layer", False):
        return spec.in_channels, spec.out_channels
    return 1, 1


def pixel_bits(spec):
    """Bits of one pixel on the line: its beat, ``Cin * in_bits`` (channel 0 lowest)."""
    return _channels(spec)[0] * spec.in_bits


def result_bits(spec):
    """Bits of one result on the line: its beat, ``Cout * out_bits`` (channel 0 lowest)."""
    return _channels(spec)[1] * spec.out_bits


def pixel_bytes(spec):
    return value_bytes(pixel_bits(spec))


def result_bytes(spec):
    return value_bytes(result_bits(spec))


def coefficient_count(spec):
    """Runtime coefficients in the header: one per coefficient-port address."""
    if not spec.runtime_coeffs:
        return 0
    if getattr(spec, "is_layer", False) or getattr(spec, "separable", False):
        return spec.coefficient_addresses
    return spec.taps


def coefficient_values(spec, kernel):
    """The header's coefficients: the value of each coefficient-port address, in order.

    ``kernel`` is the row-major ``kernel_shape`` kernel of a single-channel spec, or a layer's
    ``(Cout, Cin/groups, KH, KW)`` weights (:func:`convhw.stimulus.coefficient_writes` places
    them; addresses no weight maps to, in a folded layer, carry 0).
    """
    kernel = np.asarray(kernel)
    if getattr(spec, "separable", False) and not getattr(spec, "is_layer", False):
        from ..stimulus import separable_writes   # the two vectors whose product is kernel
        return np.array([value for _, value in sorted(separable_writes(spec, kernel))])
    if not getattr(spec, "is_layer", False):
        if kernel.shape != spec.kernel_shape:
            raise ValueError(f"'kernel' shape {kernel.shape} does not match the spec's "
                             f"'kernel_shape' {spec.kernel_shape}")
        return kernel.reshape(-1)
    from ..stimulus import coefficient_writes
    shape = (spec.out_channels, spec.group_in_channels, *spec.kernel_shape)
    if kernel.shape != shape:
        raise ValueError(f"'kernel' shape {kernel.shape} does not match the layer's "
                         f"(Cout, Cin/groups, KH, KW) weights {shape}")
    values = np.zeros(spec.coefficient_addresses,
                      dtype=kernel.dtype if kernel.dtype.kind in "iuO" else np.int64)
    if kernel.size and kernel.dtype.kind not in "iuO":
        raise TypeError(f"coefficients must be integers, not {kernel.dtype} values")
    for addr, value in coefficient_writes(spec, kernel):
        values[addr] = value
    return values


def _pack(values, bits, channels):
    """Python integers: each row of ``(n, channels)`` ``values`` side by side, channel 0
    lowest, ``bits`` each (two's complement)."""
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * c) for c, v in enumerate(row))
            for row in values.tolist()]


def _check_size(spec):
    for name, value in (("width", spec.width), ("height", spec.height)):
        if value > 0xFFFF:
            raise ValueError(f"the board protocol carries frame sizes up to 65535, "
                             f"not {name} {value}")


def header_prefix(spec):
    """The first :data:`HEADER_PREFIX_LEN` header bytes, which the board compares as constants."""
    _check_size(spec)
    return MAGIC + struct.pack("<BHHI", VERSION, spec.width, spec.height, spec_id(spec))


def header_length(spec):
    coefficients = coefficient_count(spec) * value_bytes(spec.coeff_bits)
    return HEADER_PREFIX_LEN + coefficients + 2


def encode_header(spec, kernel=None):
    """The header of one frame; ``kernel`` for runtime specs only: row-major ``kernel_shape``,
    or a layer's ``(Cout, Cin/groups, KH, KW)`` weights (see :func:`coefficient_values`)."""
    body = header_prefix(spec)
    if spec.runtime_coeffs:
        if kernel is None:
            raise ValueError("a runtime-coefficient spec needs 'kernel' for the header")
        body += encode_values(coefficient_values(spec, kernel), spec.coeff_bits, True,
                              what="coefficient")
    elif kernel is not None:
        raise ValueError("'kernel' is only for runtime-coefficient specs; this spec's "
                         "coefficients are built into the hardware")
    return body + struct.pack("<H", crc16(body))


def encode_pixels(spec, image):
    """Row-major pixel bytes of one frame: ``spec.frame_shape``, or a layer's ``(Cin, H, W)``.

    A layer's pixel is its beat: the channels' ``in_bits`` side by side, channel 0 lowest, in
    ``ceil(Cin*in_bits/8)`` little-endian bytes (zero-extended). A one-channel pixel is the
    single value, as for a single-channel spec.
    """
    image = np.asarray(image)
    layer = getattr(spec, "is_layer", False)
    shape = spec.input_shape if layer else spec.frame_shape
    if image.shape != shape:
        raise ValueError(f"image shape {image.shape} ({'channels, ' if layer else ''}height, "
                         f"width) does not match the spec's {shape}")
    channels = _channels(spec)[0]
    if channels == 1:
        return encode_values(image, spec.in_bits, spec.in_signed, what="pixel")
    encode_values(image, spec.in_bits, spec.in_signed, what="pixel")      # range check
    beats = _pack(image.reshape(channels, -1).T, spec.in_bits, channels)
    return encode_values(np.array(beats, dtype=object), pixel_bits(spec), False)


def decode_results(spec, data):
    """The output frame from result bytes: ``out_shape``, or a layer's ``(Cout, OH, OW)``."""
    channels = _channels(spec)[1]
    if not getattr(spec, "is_layer", False):
        return decode_values(data, spec.out_bits).reshape(spec.out_shape)
    if channels == 1:
        return decode_values(data, spec.out_bits).reshape(spec.output_shape)
    beats = decode_values(data, result_bits(spec), is_signed=False)
    bits, mask, sign = spec.out_bits, (1 << spec.out_bits) - 1, 1 << (spec.out_bits - 1)
    values = np.array([[(((int(beat) >> (bits * c)) & mask) ^ sign) - sign
                        for c in range(channels)] for beat in beats],
                      dtype=object if bits > 62 else np.int64).reshape(-1, channels)
    return values.T.reshape(spec.output_shape)


def pixels_needed(spec):
    """For each result (row-major), how many pixels the board has consumed when it is computed.

    Result ``(oy, ox)`` is computed at stream position ``q`` (:meth:`ConvSpec.output_position`),
    after every pixel whose position is at most ``q``; pixel ``(y, x)`` is at position
    ``y * stream_width + x``. In a chain, a layer's inputs are the previous layer's results:
    the chain's result ``k`` needs the first layer's pixels that its last layer's
    ``pixels_needed[k]`` inputs needed, and so on.
    """
    if _is_chain(spec):
        needed = _layer_pixels_needed(spec.specs[-1])
        for layer in reversed(spec.specs[:-1]):
            needed = _layer_pixels_needed(layer)[needed - 1]
        return needed
    return _layer_pixels_needed(spec)


def _layer_pixels_needed(spec):
    out_h, out_w = spec.out_shape
    oy, ox = np.meshgrid(np.arange(out_h, dtype=np.int64), np.arange(out_w, dtype=np.int64),
                         indexing="ij")
    q = spec.output_position(oy, ox).reshape(-1)
    row, col = np.divmod(q, spec.stream_width)
    return np.where(row < spec.height, row * spec.width + np.minimum(col + 1, spec.width),
                    spec.height * spec.width)


def window_pixels(spec):
    """Pixels the host must be able to send ahead of the results it has seen, to make progress."""
    needed = pixels_needed(spec)
    steps = np.diff(needed, prepend=0)
    return int(max(steps.max(), spec.width * spec.height - needed[-1], 1))


def rx_fifo_depth(spec, *, minimum=512):
    """Receive FIFO bytes for ``spec``: the window in bytes, rounded up to a power of two.

    ``minimum`` (a power of two) makes room beyond the bare window, so the host can keep more
    pixels in flight while it waits for results.
    """
    need = window_pixels(spec) * pixel_bytes(spec)
    depth = max(minimum, 1 << math.ceil(math.log2(need)))
    if depth > MAX_FIFO_BYTES:
        raise ValueError(f"the board would need a {depth}-byte receive FIFO to hold "
                         f"{window_pixels(spec)} pixels between results; at most "
                         f"{MAX_FIFO_BYTES} bytes are supported (use a narrower frame or a "
                         f"smaller stride)")
    return depth


@dataclass(frozen=True)
class Accept:
    window: int
    timeout_us: int


@dataclass(frozen=True)
class Reject:
    code: Status
    width: int
    height: int
    spec_id: int
    timeout_us: int


@dataclass(frozen=True)
class Trailer:
    status: Status
    in_crc: int
    out_crc: int


def _status(code):
    try:
        return Status(code)
    except ValueError:
        raise ValueError(f"unknown status code {code} from the board") from None


def encode_accept(window, timeout_us):
    return struct.pack("<BII", ACCEPT, window, timeout_us)


def decode_accept(data):
    if len(data) != ACCEPT_LEN or data[0] != ACCEPT:
        raise ValueError(f"not an accept reply: {bytes(data)!r}")
    return Accept(*struct.unpack("<II", data[1:]))


def encode_reject(code, width, height, spec_id_, timeout_us):
    return struct.pack("<BBHHII", REJECT, code, width, height, spec_id_, timeout_us)


def decode_reject(data):
    if len(data) != REJECT_LEN or data[0] != REJECT:
        raise ValueError(f"not a reject reply: {bytes(data)!r}")
    code, width, height, sid, timeout_us = struct.unpack("<BHHII", data[1:])
    return Reject(_status(code), width, height, sid, timeout_us)


def encode_trailer(status, in_crc, out_crc):
    return struct.pack("<BHH", status, in_crc, out_crc)


def decode_trailer(data):
    if len(data) != TRAILER_LEN:
        raise ValueError(f"a trailer is {TRAILER_LEN} bytes, not {len(data)}")
    status, in_crc, out_crc = struct.unpack("<BHH", data)
    return Trailer(_status(status), in_crc, out_crc)
