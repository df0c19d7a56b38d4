"""Joined gzip pieces decode, with the standard library's own reader, to the concatenated texts."""
from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from apreg.eureka.gzip_join import compress, concat, crc32_combine, gzip_member, inflate, shift_operator, stored

texts = st.binary(max_size=3000) | st.text(st.sampled_from("ab{}\"<>,"), max_size=3000).map(str.encode)


@given(st.lists(st.tuples(texts, st.booleans()), max_size=8))
def test_joined_pieces_are_one_valid_gzip_member(parts: list[tuple[bytes, bool]]) -> None:
    pieces = [stored(text) if as_stored else compress(text) for text, as_stored in parts]
    whole = b"".join(text for text, _ in parts)
    half = len(pieces) // 2
    joined = concat([concat(pieces[:half]), concat(pieces[half:])])  # pieces of pieces
    member = gzip_member(joined)
    assert gzip.decompress(member) == whole  # checks the CRC and the length in the trailer
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, nothing after it (what HTTP clients do)
    assert decompressor.decompress(member) == whole and decompressor.eof and not decompressor.unused_data
    assert inflate(joined) == whole and joined.length == len(whole)


@given(texts, texts)
def test_crc_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), shift_operator(len(b))) == zlib.crc32(a + b)


def test_long_stored_text_spans_several_blocks() -> None:
    text = bytes(range(256)) * 600  # over one stored block's 65,535 bytes
    assert gzip.decompress(gzip_member(concat([stored(text), compress(b"tail")]))) == text + b"tail"
