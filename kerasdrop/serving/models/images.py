"""Encoded images in a request, read from their headers before any graph decodes them.

An image's header declares its size: a 49 KB PNG may declare 20000x20000 pixels, which TensorFlow
decodes in full (~1.2 GB of pixels, more as floats) and refuses only at 2^29 pixels. Every string
input value that starts like an image (JPEG, PNG, GIF, BMP) is walked here, in time linear in its
bytes: its declared pixels (all frames, for a GIF) count against --max-image-pixels, summed over the
request, and a truncated or malformed file is answered with what is wrong with it instead of the
decoder's bare "Graph execution error". kerasdrop's own `serving_bytes` signature takes JPEG and PNG
only, so anything else sent to it is refused here too. Values that do not start like an image are
left to the model (a string input may be text or a tf.Example).
"""

from __future__ import annotations

import struct

import numpy as np

from kerasdrop.exporting.image_bytes import BYTES_SIGNATURE as IMAGE_SIGNATURE  # export --image-bytes
from kerasdrop.serving.errors import ServingError, invalid

_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length (TEM, RSTn)
# Each scan of a progressive JPEG is decoded over the whole image: 30,000 tiny extra scans (364 KB)
# took 3.6 s of CPU at 1000x1000, and the pixel limit alone allows hours. Encoders write about 10.
MAX_JPEG_SCANS = 100


def _be16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _jpeg_size(data: bytes) -> tuple[int, int, int]:
    """Width x height from the frame header; refuses a stream cut before its end-of-image marker."""
    position, size = 2, None
    while True:
        while position < len(data) and data[position] == 0xFF:  # a marker, after any fill bytes
            position += 1
        if position >= len(data):
            raise invalid("Truncated JPEG: the data ends before its image data starts")
        if data[position - 1] != 0xFF:
            raise invalid(f"Corrupt JPEG: expected a marker at byte {position}")
        marker, position = data[position], position + 1
        if marker in _STANDALONE:
            continue
        if position + 2 > len(data):
            raise invalid("Truncated JPEG: the data ends inside a segment header")
        length = _be16(data, position)
        if marker in _SOF_MARKERS:
            if position + 7 > len(data):
                raise invalid("Truncated JPEG: the data ends inside its frame header")
            size = (_be16(data, position + 5), _be16(data, position + 3))  # (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, up to the end-of-image marker
            if size is None:
                raise invalid("Corrupt JPEG: no frame header (SOF) before the image data")
            if data.rfind(b"\xff\xd9", position) < 0:
                raise invalid(
                    f"Truncated JPEG: no end-of-image marker after the image data ({len(data)} bytes)"
                )
            # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so every
            # FF DA after here starts a scan.
            scans = 1 + data.count(b"\xff\xda", position)
            if scans > MAX_JPEG_SCANS:
                raise invalid(
                    f"JPEG with {scans} scans; at most {MAX_JPEG_SCANS} are decoded (a progressive JPEG "
                    "has about 10)"
                )
            return _checked_size("JPEG", *size)
        position += length


def _png_size(data: bytes) -> tuple[int, int, int]:
    """Width x height from IHDR; refuses a file whose chunks run past its end before IEND."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise invalid(
            "Truncated PNG: no complete IHDR header" if len(data) < 33 else "Corrupt PNG: IHDR is not first"
        )
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    position = 8
    while position + 8 <= len(data):
        length, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
        position += 12 + length
        if kind == b"IEND":
            return _checked_size("PNG", width, height)
    chunk = "" if position - 12 < 8 else f" inside a chunk at byte {position}"
    raise invalid(f"Truncated PNG: the data ({len(data)} bytes) ends{chunk} before its IEND chunk")


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while position < len(data) and data[position]:
        position += 1 + data[position]
    if position >= len(data):
        raise invalid("Truncated GIF: the data ends inside a block")
    return position + 1


def _gif_size(data: bytes) -> tuple[int, int, int]:
    """The logical screen grown to hold every frame, times the frames: TensorFlow decodes every frame
    of a GIF into one array (a 1x1 screen with a 6000x6000 second frame decoded to 2x6000x6000)."""
    if len(data) < 13:
        raise invalid("Truncated GIF: no complete header")
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames = 0  # a frame may reach past the logical screen, and the decoder makes room for it
    while position < len(data):
        block = data[position]
        if block == 0x3B:  # trailer
            return (*_checked_size("GIF", width, height)[:2], max(frames, 1))
        if block == 0x21:  # extension: label, then sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if position + 10 > len(data):
                break
            left, top, frame_width, frame_height = struct.unpack_from("<4H", data, position + 1)
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            flags = data[position + 9]
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            position = _skip_sub_blocks(data, position + 1)
            frames += 1
        else:
            raise invalid(f"Corrupt GIF: unknown block 0x{block:02x} at byte {position}")
    raise invalid(f"Truncated GIF: the data ({len(data)} bytes) ends before its trailer")


def _bmp_size(data: bytes) -> tuple[int, int, int]:
    if len(data) < 26:
        raise invalid("Truncated BMP: no complete header")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return _checked_size("BMP", abs(width), abs(height))


def _checked_size(kind: str, width: int, height: int) -> tuple[int, int, int]:
    """`(width, height, frames)`."""
    if width <= 0 or height <= 0:
        raise invalid(f"Corrupt {kind}: its header declares a size of {width}x{height}")
    return width, height, 1


def image_format(data: bytes) -> str | None:
    if data.startswith(_JPEG):
        return "JPEG"
    if data.startswith(_PNG):
        return "PNG"
    if data[:4] == b"GIF8":  # what TensorFlow's own format check reads
        return "GIF"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"  # (text that starts with "BM" is not one: "BMW X5 ..." had declared 1646290276 pixels)
    return None


_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}  # the DIB header versions decoders know


_SIZES = {"JPEG": _jpeg_size, "PNG": _png_size, "GIF": _gif_size, "BMP": _bmp_size}


def declared_size(data: bytes, images_only: bool) -> tuple[int, int, int] | None:
    """`(width, height, frames)` that `data` decodes to; None when it is not an image (and
    `images_only` is off)."""
    kind = image_format(data)
    if images_only and kind not in ("JPEG", "PNG"):
        raise invalid(
            f"not a JPEG or PNG image (it starts with {data[:8]!r}); "
            f"the {IMAGE_SIGNATURE} signature decodes JPEG and PNG{_base64_hint(data)}"
        )
    return None if kind is None else _SIZES[kind](data)


def _base64_hint(data: bytes) -> str:
    """A hint when `data` is the base64 text of an image sent as a plain JSON string: TF Serving's REST
    API takes such a string as the bytes themselves, and only `{"b64": "..."}` as base64 to decode."""
    import base64
    import binascii

    head = data[:64].strip()
    try:
        decoded = base64.b64decode(head[: len(head) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        return ""
    if image_format(decoded) is None:
        return ""
    return (
        ". It looks like base64 text of an image sent as a plain string: over REST, wrap it as "
        '{"b64": "<the base64 text>"} (TF Serving decodes only a b64 object; a string is taken as the bytes)'
    )


def check_encoded_images(signature: str, inputs: dict[str, np.ndarray], max_pixels: int | None) -> None:
    """Refuses what no decoder should be given: a malformed image, anything but JPEG/PNG for the
    image signature, or images whose declared pixels sum past `max_pixels` (--max-image-pixels)."""
    images_only, total = signature == IMAGE_SIGNATURE, 0
    for key, array in inputs.items():
        if array.dtype != object:
            continue
        for index, value in enumerate(array.reshape(-1)):
            if isinstance(value, str):
                value = value.encode("utf-8", "surrogatepass")  # what TensorFlow is given for it
            elif not isinstance(value, bytes):
                continue
            try:
                size = declared_size(value, images_only)
            except ServingError as error:
                raise invalid(f"Input {key!r}[{index}]: {error.message}") from None
            if size is not None:
                total += size[0] * size[1] * size[2]
                if max_pixels and total > max_pixels:
                    raise _too_many_pixels(key, index, size, total, max_pixels)


def _too_many_pixels(
    key: str, index: int, size: tuple[int, int, int], total: int, limit: int
) -> ServingError:
    width, height, frames = size
    image = f"{width}x{height}" + (f" x {frames} frames" if frames > 1 else "")
    what = (
        f"image of {image} pixels"
        if width * height * frames == total
        else f"image of {image} pixels brings the request's images to {total} pixels, which"
    )
    return ServingError(
        "RESOURCE_EXHAUSTED",
        f"Input {key!r}[{index}]: {what} exceeds the limit of {limit} decoded "
        "pixels per request (--max-image-pixels); send smaller images or fewer per request",
        http_status=413,
    )
