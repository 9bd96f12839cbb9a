"""Print the constant tables of refrt/_kernels/vecmath.h ("table-driven" sections), from
mpmath at 200 bits, so every entry can be regenerated and checked:

    python bench/vecmath_tables.py > /tmp/tables.h

* REFRT_EXP2_HI[j] = 2^(j/64) rounded to double, REFRT_EXP2_TL[j] = (2^(j/64) - HI)/HI
  rounded (the relative tail; Tang's table-driven exp, ACM TOMS 15(2), 1989).
* REFRT_LOG_INVC[i], REFRT_LOG_LOGC_HI/LO[i]: for the i-th of 128 intervals of the bit
  patterns [OFF + i 2^45, OFF + (i+1) 2^45), OFF = 0x3fe6500000000000 (values in
  [0.6973, 1.3946)), invc = 1/(interval midpoint) rounded to double and
  logc = -log(invc) as a double-word; the interval holding 1.0, [1 - 2^-9, 1 + 2^-8),
  gets invc = 1, logc = 0 exactly (no cancellation near x = 1).
"""
import struct

import mpmath

mp = mpmath.MPContext()
mp.prec = 200
OFF = 0x3fe6500000000000


def bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def dbl(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def hexd(v):
    return f"0x{bits(float(v)):016x}u"


def main():
    hi, tl = [], []
    for j in range(64):
        t = mp.power(2, mp.mpf(j) / 64)
        h = float(t)
        hi.append(h)
        tl.append(float((t - mp.mpf(h)) / mp.mpf(h)))
    invc, lh, ll = [], [], []
    for i in range(128):
        lo_v = mp.mpf(dbl(OFF + i * 2 ** 45))
        hi_v = mp.mpf(dbl(OFF + (i + 1) * 2 ** 45))
        if lo_v <= 1 < hi_v:
            c, a, b = 1.0, 0.0, 0.0
        else:
            c = float(1 / ((lo_v + hi_v) / 2))
            L = -mp.log(mp.mpf(c))
            a = float(L)
            b = float(L - mp.mpf(a))
        invc.append(c)
        lh.append(a)
        ll.append(b)

    def table(name, vals, per=4):
        out = [f"static const uint64_t {name}[{len(vals)}] = {{"]
        for k in range(0, len(vals), per):
            out.append("    " + ", ".join(hexd(v) for v in vals[k:k + per]) + ",")
        out.append("};")
        return "\n".join(out)

    print(table("REFRT_EXP2_HI", hi))
    print(table("REFRT_EXP2_TL", tl))
    print(table("REFRT_LOG_INVC", invc))
    print(table("REFRT_LOG_LOGC_HI", lh))
    print(table("REFRT_LOG_LOGC_LO", ll))
    # polynomial constants used by the header, for the record
    c = mp.log(2) / 64
    print("/* (ln2/64)^i / i!, i = 1..5 */")
    for i in range(1, 6):
        print(f"/* C{i} = {float(c ** i / mp.factorial(i))!r} */")
    ih = float(64 / mp.log(2))
    ih29 = dbl(bits(ih) & ~((1 << 24) - 1))            # 29 significant bits
    print(f"/* 64/ln2 hi (29 bits) = {ih29!r}, lo = {float(64 / mp.log(2) - mp.mpf(ih29))!r} */")
    l2 = mp.log(2) / 64
    print(f"/* ln2/64 = {float(l2)!r}; ln2 hi/lo = {float(mp.log(2))!r} "
          f"{float(mp.log(2) - mp.mpf(float(mp.log(2))))!r} */")


if __name__ == "__main__":
    main()
