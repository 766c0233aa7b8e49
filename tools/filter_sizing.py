#!/usr/bin/env python3
"""Sizes the trigram Bloom filters of compacted segments (issue 26) on a real store.

Reads version-1 segment files (format-spec/FORMAT.md, "Frame"), cuts their events into blocks
of >= 32 KiB of frame bytes (what the compacted format compresses as one zstd block), and for
groups of 1, 8, 16 and 32 consecutive blocks builds the filter that format-spec/filter-section.md
specifies (this script is an independent implementation of it), for several bits per trigram.
It prints, per group size and bits per trigram: distinct trigrams per group, filter bytes per
event, and the share of groups a random lowercase needle of 3, 4, 5 and 8 bytes passes (the
groups a search for it would have to decompress). "exact" is a filter with no false positives:
the groups whose trigram set holds every trigram of the needle.

Usage: python tools/filter_sizing.py [--groups 1,8,16,32] [--bits 3,4,5,6] SEGMENT.seg [...]
       python tools/filter_sizing.py --example   (prints the spec's worked example in hex)
The "builder" rows size each filter as the Rust builder does (10 bits per trigram, at most
32 bits per payload, at least 4 bits per trigram).
Needs the `lz4` module (payloads over 1 KiB are LZ4 block compressed).
"""
import random
import statistics
import struct
import sys

import lz4.block

BLOCK_LEN = 32 * 1024
GROUP_BLOCKS = (1, 8, 16, 32)
BITS_PER_TRIGRAM = (3, 4, 5, 6)
# `--groups 16,32,64 --bits 5,8,10` before the segment paths replace the two lists above.
NEEDLE_LENS = (3, 4, 5, 8)
NEEDLES_PER_LEN = 200
HEADER_LEN = 8
MASK64 = (1 << 64) - 1


BITS_PER_TRIGRAM_MAX = 10
BITS_PER_PAYLOAD = 32
BITS_PER_TRIGRAM_MIN = 4


def sizing(distinct, payloads):
    """(hashes, m_bits) the Rust builder chooses for `distinct` trigrams of `payloads`
    payloads (src/packed/filter.rs, `sizing`)."""
    if distinct == 0:
        return 1, 0
    wanted = min(distinct * BITS_PER_TRIGRAM_MAX, payloads * BITS_PER_PAYLOAD)
    m = (max(wanted, distinct * BITS_PER_TRIGRAM_MIN) + 63) // 64 * 64
    k = (m * 693147 + distinct * 500000) // (distinct * 1000000)
    return max(1, min(16, k)), m


def encode(payloads):
    """The filter of a group of payloads, as bytes (the section's encoding)."""
    tris = set()
    for x in payloads:
        x = x.lower()
        tris.update(x[i : i + 3] for i in range(len(x) - 2))
    k, m = sizing(len(tris), len(payloads))
    arr = bits_of(tris, k, m)
    return bytes([k, 0, 0, 0]) + m.to_bytes(4, "little") + bytes(arr)


def k_for(bits):
    """Hash functions per trigram for `bits` bits per trigram: ln 2 times it, rounded (the
    count that minimises false positives), as the Rust builder chooses it."""
    return max(1, min(16, round(bits * 0.6931471805599453)))


def varint(b, i):
    r = 0
    sh = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << sh
        sh += 7
        if x < 0x80:
            return r, i


def events(path):
    """Yields (frame_len, payload) per frame of a sealed version-1 segment (payload None for
    string definitions and events without data)."""
    buf = open(path, "rb").read()

    def slot(o):
        seq, cl, _dl, _ec, _li, _ct, _fl, _crc = struct.unpack_from("<QQQQQqII", buf, o)
        return seq, cl

    a, b = slot(64), slot(120)
    committed = (a if a[0] > b[0] else b)[1]
    o = 256
    while o < committed:
        bl, _crc = struct.unpack_from("<II", buf, o)
        body = buf[o + 8 : o + 8 + bl]
        o += 8 + bl
        fl = body[0]
        if fl & 3 == 2:
            yield 8 + bl, None, False
            continue
        i = 1
        for _ in range(4):
            _, i = varint(body, i)
        if fl & 8:
            _, i = varint(body, i)
        i += 8
        pay = None
        if fl & 16:
            if fl & 4:
                rl, i = varint(body, i)
                pay = lz4.block.decompress(body[i:], uncompressed_size=rl)
            else:
                pay = body[i:]
        yield 8 + bl, pay, True


def fmix64(x):
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x


HASH = {}


def hashes(tri):
    """(h1, h2) of a trigram given as 3 bytes."""
    h = HASH.get(tri)
    if h is None:
        x = fmix64(tri[0] | tri[1] << 8 | tri[2] << 16)
        h = (x & 0xFFFFFFFF, (x >> 32) | 1)
        HASH[tri] = h
    return h


def positions(tri, k, m):
    h1, h2 = hashes(tri)
    return [(h1 + i * h2) % m for i in range(k)]


def bits_of(trigrams, k, m):
    arr = bytearray(m // 8)
    for t in trigrams:
        for p in positions(t, k, m):
            arr[p >> 3] |= 1 << (p & 7)
    return arr


def build(trigrams, bits, payloads=None):
    """A filter of `bits` bits per trigram, or sized as the Rust builder does when `bits` is
    None (then `payloads` is the group's payload count)."""
    if bits is None:
        k, m = sizing(len(trigrams), payloads)
    else:
        k = k_for(bits)
        m = (len(trigrams) * bits + 63) // 64 * 64
    return k, m, bits_of(trigrams, k, m)


def passes(filt, needle_tris):
    k, m, arr = filt
    if m == 0:
        return False
    for t in needle_tris:
        for p in positions(t, k, m):
            if not arr[p >> 3] >> (p & 7) & 1:
                return False
    return True


def example():
    """The worked example of format-spec/filter-section.md."""
    f = encode([b'{"a":"Hi"}', b"hi!"])
    print(f.hex())


def main():
    if sys.argv[1:] == ["--example"]:
        example()
        return
    global GROUP_BLOCKS, BITS_PER_TRIGRAM
    args = sys.argv[1:]
    while args and args[0].startswith("--"):
        values = tuple(int(v) for v in args[1].split(","))
        if args[0] == "--groups":
            GROUP_BLOCKS = values
        else:
            BITS_PER_TRIGRAM = values
        args = args[2:]
    blocks = []  # (events, frame bytes, trigram set, payloads)
    cur, n_ev, n_bytes, n_pay = set(), 0, 0, 0
    for path in args:
        for frame_len, pay, is_event in events(path):
            n_bytes += frame_len
            n_ev += is_event
            if pay is not None:
                n_pay += 1
                p = pay.lower()  # ASCII letters only, as the filter
                cur.update(p[i : i + 3] for i in range(len(p) - 2))
            if n_bytes >= BLOCK_LEN:
                blocks.append((n_ev, n_bytes, cur, n_pay))
                cur, n_ev, n_bytes, n_pay = set(), 0, 0, 0
    if n_ev:
        blocks.append((n_ev, n_bytes, cur, n_pay))
    total_ev = sum(b[0] for b in blocks)
    print(f"{len(args)} segments, {total_ev} events, {len(blocks)} blocks of >= 32 KiB")
    rnd = random.Random(26)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    needles = {
        n: [bytes(rnd.choice(letters) for _ in range(n)) for _ in range(NEEDLES_PER_LEN)]
        for n in NEEDLE_LENS
    }
    needle_tris = {
        n: [{x[i : i + 3] for i in range(n - 2)} for x in xs] for n, xs in needles.items()
    }
    hdr = "| group | events/group | distinct trigrams/group (median) | bits/trigram | k | filter B/event | " + " | ".join(
        f"groups passed, {n}-byte needle" for n in NEEDLE_LENS
    ) + " |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for g in GROUP_BLOCKS:
        groups = []
        for s in range(0, len(blocks), g):
            run = blocks[s : s + g]
            tris = set().union(*(b[2] for b in run))
            groups.append((sum(b[0] for b in run), tris, sum(b[3] for b in run)))
        ev_med = statistics.median(x[0] for x in groups)
        dist_med = statistics.median(len(x[1]) for x in groups)
        label = f"{g * 32} KiB"
        exact = {
            n: sum(nt <= tris for _, tris, _ in groups for nt in needle_tris[n])
            / (len(groups) * NEEDLES_PER_LEN)
            for n in NEEDLE_LENS
        }
        print(
            f"| {label} | {ev_med:.0f} | {dist_med:.0f} | exact | - | - | "
            + " | ".join(f"{exact[n]:.4f}" for n in NEEDLE_LENS)
            + " |"
        )
        for bits in BITS_PER_TRIGRAM + (None,):
            fbytes = 0
            passed = {n: 0 for n in NEEDLE_LENS}
            ks = []
            for _ev, tris, n_pay in groups:
                filt = build(tris, bits, n_pay)
                ks.append(filt[0])
                fbytes += HEADER_LEN + filt[1] // 8
                for n in NEEDLE_LENS:
                    passed[n] += sum(passes(filt, nt) for nt in needle_tris[n])
            print(
                f"| {label} | {ev_med:.0f} | {dist_med:.0f} | {bits or 'builder'} | {statistics.median(ks):.0f} | {fbytes / total_ev:.2f} | "
                + " | ".join(f"{passed[n] / (len(groups) * NEEDLES_PER_LEN):.4f}" for n in NEEDLE_LENS)
                + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
