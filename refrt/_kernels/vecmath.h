/* Array exp (and log, further down) for the hot loops of the softmax family and losses.
 * float64 exp and log are table-driven (X1-X3, G1-G4 below: ~0.52 ulp, a third of the
 * flops of the series); float32 exp/log here stay float-only (the composite float32
 * kernels use them), and the correctly rounded float32 functions of the elementwise ops
 * are at the end ("correctly rounded float32", C1-C4).
 *
 * Contract: y[i] = exp(x[i]) for 0 <= i < n (x == y allowed, any alignment), with IEEE
 * special values -- exp(-inf) = +0, exp(+inf) = +inf, NaN -> quiet NaN, overflow -> +inf,
 * gradual underflow into the subnormals -- and at most 1 ulp error (float: float
 * arithmetic only).  Results are bitwise identical on every x86-64 CPU (see d).
 *
 * Design:
 * a) Branch-free loop body, so gcc -O3 auto-vectorises it: no calls (fma is inlined, see
 *    d), no `if`.  The special cases are selected at the end with integer bit masks; a
 *    float compare could trap under the default -ftrapping-math, which forbids gcc to
 *    if-convert it, and the loop would stay scalar.
 * b) Range reduction  x = k*ln2 + r,  |r| <= ln2/2 (+ rounding slack):
 *      k  = round(x*log2(e)) via the shifter S = 1.5*2^52 (float 1.5*2^23): for
 *           |t| < 2^51, t + S rounds t to an integer kept in the low mantissa bits of
 *           t + S, so (t + S) - S is round(t) as a double and the bit pattern carries k
 *           (no float->int conversion, which vectorises badly for 64-bit ints on AVX2).
 *      hi = x - k*LN2HI is EXACT (Cody-Waite): LN2HI keeps 32 (float: 15) significant
 *           bits and |k| <= 1076 (float: 150) needs 11 (8), so k*LN2HI is exact, and the
 *           difference is exact by Sterbenz' lemma (x/(k*LN2HI) is in [1/2, 2] for k != 0).
 *      lo = k*LN2LO (LN2LO = ln2 - LN2HI rounded), |lo| <= 2.1e-7 (float 2.2e-4); its
 *           rounding error is ~2^-53 |lo|, below 2^-75 relative to the result.
 *      r  = hi - lo rounded; rlo = (hi - r) - lo recovers the rounding error exactly
 *           (Fast2Sum; where |hi| < |lo|, r is below 4e-7 and rlo is irrelevant).
 * c) exp(r) = 1 + r + r^2/2 + r^3 q(r),  q = 1/3! + r/4! + ... + r^(N-3)/N!  (Horner),
 *    Taylor degree N = 13 (float: 8).  Truncation error for |r| <= 0.3466:
 *      double: |r|^14/14! = 4.2e-18  (< 0.04 ulp of exp(r) >= 0.707);
 *      float:  |r|^9/9!   = 2.0e-10  (< 0.005 ulp);
 *    degree 12 / 7 would cost 1.5 / 0.12 ulp.  Assembly, largest terms exact:
 *      s + e = 1 + r          exactly (Fast2Sum, |r| < 1),
 *      r2 + r2lo = r*r        exactly (fma(r, r, -r2)),
 *      y = s + ((e + r2/2) + ((rlo + rlo*r) + (r2lo/2 + r2*(r*q)))),
 *    so only the final addition rounds at full weight.
 * d) fma and dispatch: the build has no -march, so the loops are cloned per ISA level
 *    (target_clones: x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, default = SSE2) and an
 *    ifunc picks one at load time.  In the v3/v4 clones fma() is one instruction; in
 *    the default clone it is a call to the correctly rounded libm fma (slow, no
 *    vectorisation, but the same bits).  Every operation is a correctly rounded IEEE
 *    operation in a fixed order, so all three clones return bitwise identical results
 *    (tests/test_vecmath.py builds every loop for x86-64, x86-64-v3 and x86-64-v4 and
 *    compares the bits; NaN results are selected to x + x, so that which operand's
 *    payload an fma passes on cannot differ): a reference runtime must not change its
 *    answers with the CPU it runs on.  -ffp-contract=off keeps gcc from fusing others.
 *    Table lookups (the table-driven sections below) are integer-indexed loads; gcc's
 *    generic tuning does not emit gathers for them (measured: -mtune-ctrl=use_gather
 *    makes the float32 correctly rounded exp ~25% faster), the values are the same.
 * e) Error budget (units of the result's ulp): final rounding 0.5; the two roundings in
 *    the tail (|e + r2/2| <= 0.07, ulp 2^-57) ~0.06; Horner and the cubic term < 0.01;
 *    truncation 0.04 (float 0.005); reduction < 0.01.  Bound ~0.62 ulp for normal
 *    results; measured: float64 0.57 (mpmath samples), float32 0.56 (every float in 8
 *    binades, tests/test_vecmath.py).
 * f) Reconstruction 2^k by integer addition into the exponent field, in TWO factors
 *    2^k1 * 2^k2 with k1 = round(k/2), k2 = k - k1: one factor would need an exponent
 *    field k + 1023 outside [1, 2046] at both ends (k = 1024 just below the overflow
 *    threshold, k < -1022 for subnormal results).  With two factors y*2^k1 is exact and
 *    normal and the second product rounds once: overflow gives +inf, and results below
 *    DBL_MIN round into the subnormals.  There y, already rounded to 53 bits with error
 *    <= 0.62 of its ulp, is rounded again to a grid 2^m times coarser (m = bits lost):
 *    error <= 0.5 + 0.62 * 2^-m subnormal ulps, at most 0.81 (m = 1), below 1 ulp
 *    (measured 0.75 in both formats).
 * g) Cutoffs: the reconstruction is valid for x in [XMIN, XMAX]; outside it the result
 *    is selected: x > XMAX (+inf included) -> +inf, x < XMIN (-inf included) -> +0.
 *      double: XMAX = 710 > ln(DBL_MAX) = 709.782712893384 (k <= 1024), so the overflow
 *              threshold itself is handled by the arithmetic (x >= 709.7827128933841
 *              gives +inf); XMIN = -746 < ln(2^-1075) = -745.1332191019412, below which
 *              exp rounds to +0 (k >= -1076; the arithmetic rounds [-746, -745.13] to 0).
 *      float:  XMAX = 89 > ln(FLT_MAX) = 88.7228394; XMIN = -104 < ln(2^-150) = -103.9721.
 *    NaN fails both selects and stays NaN through the arithmetic (quiet: every NaN
 *    operand of an IEEE operation gives a quiet NaN); k's bits are garbage then, unused.
 */
#ifndef REFRT_VECMATH_H
#define REFRT_VECMATH_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Runtime dispatch (d): target_clones compiles the loops once per ISA level and an ifunc
 * resolver picks one at load time.  arch=x86-64-v3 = AVX2 + FMA (Haswell, Zen 1-3),
 * x86-64-v4 = AVX-512 (Skylake-X, Zen 4).  Needs ELF ifuncs and gcc >= 12; elsewhere the
 * plain loop is built (same results, baseline ISA). */
#if defined(__x86_64__) && defined(__linux__) && !defined(REFRT_NO_CLONES) && \
    defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define REFRT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define REFRT_CLONES
#endif

static inline uint64_t refrt_bits_f64(double v) { uint64_t u; memcpy(&u, &v, 8); return u; }
static inline double refrt_from_bits_f64(uint64_t u) { double v; memcpy(&v, &u, 8); return v; }
static inline uint32_t refrt_bits_f32(float v) { uint32_t u; memcpy(&u, &v, 4); return u; }
static inline float refrt_from_bits_f32(uint32_t u) { float v; memcpy(&v, &u, 4); return v; }
/* ============================================================ table-driven cores
 * Tables shared by the correctly rounded float32 functions below and the float64 exp /
 * log (generated by bench/vecmath_tables.py from mpmath at 200 bits; the script's
 * docstring defines every entry):
 *   REFRT_EXP2_HI[j] = 2^(j/64) rounded, REFRT_EXP2_TL[j] = its relative rounding error
 *   (Tang, "Table-driven implementation of the exponential function in IEEE
 *   floating-point arithmetic", ACM TOMS 15(2), 1989, with N = 64);
 *   REFRT_LOG_INVC[i] ~ 1/c_i and REFRT_LOG_LOGC_HI/LO[i] = -log(INVC[i]) (double-word)
 *   for 128 intervals of m in [0.6973, 1.3946) (Tang, "Table-driven implementation of
 *   the logarithm function", ACM TOMS 16(4), 1990, reciprocal form as in CORE-MATH /
 *   ARM optimized-routines); the interval holding 1, [1 - 2^-9, 1 + 2^-8), has INVC = 1
 *   and LOGC = 0 exactly, so log x keeps its full relative accuracy as x -> 1.
 * Tables are read with integer indices, which gcc vectorises as gathers (vgatherqpd)
 * in the x86-64-v3/v4 clones; the gathered values are the same, so the clones stay
 * bitwise identical.
 */
static const uint64_t REFRT_EXP2_HI[64] = {
    0x3ff0000000000000u, 0x3ff02c9a3e778061u, 0x3ff059b0d3158574u, 0x3ff0874518759bc8u,
    0x3ff0b5586cf9890fu, 0x3ff0e3ec32d3d1a2u, 0x3ff11301d0125b51u, 0x3ff1429aaea92de0u,
    0x3ff172b83c7d517bu, 0x3ff1a35beb6fcb75u, 0x3ff1d4873168b9aau, 0x3ff2063b88628cd6u,
    0x3ff2387a6e756238u, 0x3ff26b4565e27cddu, 0x3ff29e9df51fdee1u, 0x3ff2d285a6e4030bu,
    0x3ff306fe0a31b715u, 0x3ff33c08b26416ffu, 0x3ff371a7373aa9cbu, 0x3ff3a7db34e59ff7u,
    0x3ff3dea64c123422u, 0x3ff4160a21f72e2au, 0x3ff44e086061892du, 0x3ff486a2b5c13cd0u,
    0x3ff4bfdad5362a27u, 0x3ff4f9b2769d2ca7u, 0x3ff5342b569d4f82u, 0x3ff56f4736b527dau,
    0x3ff5ab07dd485429u, 0x3ff5e76f15ad2148u, 0x3ff6247eb03a5585u, 0x3ff6623882552225u,
    0x3ff6a09e667f3bcdu, 0x3ff6dfb23c651a2fu, 0x3ff71f75e8ec5f74u, 0x3ff75feb564267c9u,
    0x3ff7a11473eb0187u, 0x3ff7e2f336cf4e62u, 0x3ff82589994cce13u, 0x3ff868d99b4492edu,
    0x3ff8ace5422aa0dbu, 0x3ff8f1ae99157736u, 0x3ff93737b0cdc5e5u, 0x3ff97d829fde4e50u,
    0x3ff9c49182a3f090u, 0x3ffa0c667b5de565u, 0x3ffa5503b23e255du, 0x3ffa9e6b5579fdbfu,
    0x3ffae89f995ad3adu, 0x3ffb33a2b84f15fbu, 0x3ffb7f76f2fb5e47u, 0x3ffbcc1e904bc1d2u,
    0x3ffc199bdd85529cu, 0x3ffc67f12e57d14bu, 0x3ffcb720dcef9069u, 0x3ffd072d4a07897cu,
    0x3ffd5818dcfba487u, 0x3ffda9e603db3285u, 0x3ffdfc97337b9b5fu, 0x3ffe502ee78b3ff6u,
    0x3ffea4afa2a490dau, 0x3ffefa1bee615a27u, 0x3fff50765b6e4540u, 0x3fffa7c1819e90d8u,
};
static const uint64_t REFRT_EXP2_TL[64] = {
    0x0000000000000000u, 0xbc7160139cd8dc5du, 0x3c8cd2523567f613u, 0x3c60f74e61e6c861u,
    0x3c979aa65d837b6du, 0x3c3ebe3d702f9cd1u, 0xbc9556522a2fbd0eu, 0xbc91c923b9d5f416u,
    0xbc801b15eaa59348u, 0x3c8b898c3f1353bfu, 0x3c9aecf73e3a2f60u, 0x3c8a6f4144a6c38du,
    0x3c968efde3a8a894u, 0x3c80472b981fe7f2u, 0x3c82f7e16d09ab31u, 0x3c8b3782720c0ab4u,
    0x3c834d754db0abb6u, 0x3c8fdd395dd3f84au, 0xbc924aedcc4b5068u, 0xbc71d1e83e9436d2u,
    0x3c859f48a72a4c6du, 0xbc58a78f4817895bu, 0x3c4363ed60c2ac11u, 0x3c6ecce1daa10379u,
    0x3c7690cebb7aafb0u, 0xbc8f94340071a38eu, 0xbc78dec6bd0f385fu, 0x3c93350518fdd78eu,
    0x3c9063e1e21c5409u, 0x3c9432e62b64c035u, 0xbc8c33c53bef4da8u, 0xbc93cedd78565858u,
    0xbc93b3efbf5e2228u, 0xbc6367efb86da9eeu, 0xbc781f647e5a3ecfu, 0xbc8619321e55e68au,
    0xbc7b32dcb94da51du, 0x3c65ebe1abd66c55u, 0xbc9369b6f13b3734u, 0xbc94d450d872576eu,
    0x3c8db72fc1f0eab4u, 0x3c7bf68359f35f44u, 0xbc5da9b88b6c1e29u, 0xbc92434322f4f9aau,
    0x3c71affc2b91ce27u, 0xbc87c50422622263u, 0xbc91bbd1d3bcbb15u, 0x3c8469846e735ab3u,
    0x3c8c1a7792cb3387u, 0xbc55c3d956dcaebau, 0xbc68d6f438ad9334u, 0x3c74ffd70a5fddcdu,
    0x3c736eae30af0cb3u, 0x3c84e08fd10959acu, 0x3c676b2c6c921968u, 0xbc8fad5d3ffffa6fu,
    0x3c74a385a63d07a7u, 0x3c8e5a50d5c192acu, 0xbc82d52107b43e1fu, 0x3c74b604603a88d3u,
    0xbc8ff7128fd391f0u, 0x3c8ec3bc41aa2008u, 0x3c8a64a931d185eeu, 0x3c77893b4d91cd9du,
};
static const uint64_t REFRT_LOG_INVC[128] = {
    0x3ff6e1f76b4337c7u, 0x3ff6c16c16c16c17u, 0x3ff6a13cd1537290u, 0x3ff6816816816817u,
    0x3ff661ec6a5122f9u, 0x3ff642c8590b2164u, 0x3ff623fa77016240u, 0x3ff6058160581606u,
    0x3ff5e75bb8d015e7u, 0x3ff5c9882b931057u, 0x3ff5ac056b015ac0u, 0x3ff58ed2308158edu,
    0x3ff571ed3c506b3au, 0x3ff5555555555555u, 0x3ff5390948f40febu, 0x3ff51d07eae2f815u,
    0x3ff5015015015015u, 0x3ff4e5e0a72f0539u, 0x3ff4cab88725af6eu, 0x3ff4afd6a052bf5bu,
    0x3ff49539e3b2d067u, 0x3ff47ae147ae147bu, 0x3ff460cbc7f5cf9au, 0x3ff446f86562d9fbu,
    0x3ff42d6625d51f87u, 0x3ff4141414141414u, 0x3ff3fb013fb013fbu, 0x3ff3e22cbce4a902u,
    0x3ff3c995a47babe7u, 0x3ff3b13b13b13b14u, 0x3ff3991c2c187f63u, 0x3ff3813813813814u,
    0x3ff3698df3de0748u, 0x3ff3521cfb2b78c1u, 0x3ff33ae45b57bcb2u, 0x3ff323e34a2b10bfu,
    0x3ff30d190130d190u, 0x3ff2f684bda12f68u, 0x3ff2e025c04b8097u, 0x3ff2c9fb4d812ca0u,
    0x3ff2b404ad012b40u, 0x3ff29e4129e4129eu, 0x3ff288b01288b013u, 0x3ff27350b8812735u,
    0x3ff25e22708092f1u, 0x3ff2492492492492u, 0x3ff23456789abcdfu, 0x3ff21fb78121fb78u,
    0x3ff20b470c67c0d9u, 0x3ff1f7047dc11f70u, 0x3ff1e2ef3b3fb874u, 0x3ff1cf06ada2811du,
    0x3ff1bb4a4046ed29u, 0x3ff1a7b9611a7b96u, 0x3ff19453808ca29cu, 0x3ff1811811811812u,
    0x3ff16e0689427379u, 0x3ff15b1e5f75270du, 0x3ff1485f0e0acd3bu, 0x3ff135c81135c811u,
    0x3ff12358e75d3033u, 0x3ff1111111111111u, 0x3ff0fef010fef011u, 0x3ff0ecf56be69c90u,
    0x3ff0db20a88f4696u, 0x3ff0c9714fbcda3bu, 0x3ff0b7e6ec259dc8u, 0x3ff0a6810a6810a7u,
    0x3ff0953f39010954u, 0x3ff0842108421084u, 0x3ff073260a47f7c6u, 0x3ff0624dd2f1a9fcu,
    0x3ff05197f7d73404u, 0x3ff0410410410410u, 0x3ff03091b51f5e1au, 0x3ff0204081020408u,
    0x3ff0101010101010u, 0x3ff0000000000000u, 0x3fefc07f01fc07f0u, 0x3fef81f81f81f820u,
    0x3fef44659e4a4271u, 0x3fef07c1f07c1f08u, 0x3feecc07b301ecc0u, 0x3fee9131abf0b767u,
    0x3fee573ac901e574u, 0x3fee1e1e1e1e1e1eu, 0x3fede5d6e3f8868au, 0x3fedae6076b981dbu,
    0x3fed77b654b82c34u, 0x3fed41d41d41d41du, 0x3fed0cb58f6ec074u, 0x3fecd85689039b0bu,
    0x3feca4b3055ee191u, 0x3fec71c71c71c71cu, 0x3fec3f8f01c3f8f0u, 0x3fec0e070381c0e0u,
    0x3febdd2b899406f7u, 0x3febacf914c1bad0u, 0x3feb7d6c3dda338bu, 0x3feb4e81b4e81b4fu,
    0x3feb2036406c80d9u, 0x3feaf286bca1af28u, 0x3feac5701ac5701bu, 0x3fea98ef606a63beu,
    0x3fea6d01a6d01a6du, 0x3fea41a41a41a41au, 0x3fea16d3f97a4b02u, 0x3fe9ec8e951033d9u,
    0x3fe9c2d14ee4a102u, 0x3fe999999999999au, 0x3fe970e4f80cb872u, 0x3fe948b0fcd6e9e0u,
    0x3fe920fb49d0e229u, 0x3fe8f9c18f9c18fau, 0x3fe8d3018d3018d3u, 0x3fe8acb90f6bf3aau,
    0x3fe886e5f0abb04au, 0x3fe8618618618618u, 0x3fe83c977ab2beddu, 0x3fe8181818181818u,
    0x3fe7f405fd017f40u, 0x3fe7d05f417d05f4u, 0x3fe7ad2208e0ecc3u, 0x3fe78a4c8178a4c8u,
    0x3fe767dce434a9b1u, 0x3fe745d1745d1746u, 0x3fe724287f46debcu, 0x3fe702e05c0b8170u,
};
static const uint64_t REFRT_LOG_LOGC_HI[128] = {
    0xbfd6e60ee6af1973u, 0xbfd68ac83e9c6a15u, 0xbfd630030b3aac48u, 0xbfd5d5bddf595f31u,
    0xbfd57bf753c8d1fbu, 0xbfd522ae0738a3d7u, 0xbfd4c9e09e172c3du, 0xbfd4718dc271c41cu,
    0xbfd419b423d5e8c6u, 0xbfd3c25277333183u, 0xbfd36b6776be1116u, 0xbfd314f1e1d35ce3u,
    0xbfd2bef07cdc9355u, 0xbfd269621134db91u, 0xbfd214456d0eb8d5u, 0xbfd1bf99635a6b95u,
    0xbfd16b5ccbacfb73u, 0xbfd1178e8227e47au, 0xbfd0c42d676162e2u, 0xbfd07138604d5864u,
    0xbfd01eae5626c691u, 0xbfcf991c6cb3b37au, 0xbfcef5ade4dcffe5u, 0xbfce530effe71013u,
    0xbfcdb13db0d48941u, 0xbfcd1037f2655e7bu, 0xbfcc6ffbc6f00f71u, 0xbfcbd087383bd8aau,
    0xbfcb31d8575bce3bu, 0xbfca93ed3c8ad9e5u, 0xbfc9f6c407089663u, 0xbfc95a5adcf70182u,
    0xbfc8beafeb38fe8fu, 0xbfc823c16551a3c0u, 0xbfc7898d85444c74u, 0xbfc6f0128b756ab9u,
    0xbfc6574ebe8c1339u, 0xbfc5bf406b543db0u, 0xbfc527e5e4a1b58du, 0xbfc4913d8333b563u,
    0xbfc3fb45a59928cau, 0xbfc365fcb0159014u, 0xbfc2d1610c86813du, 0xbfc23d712a49c201u,
    0xbfc1aa2b7e23f729u, 0xbfc1178e8227e47au, 0xbfc08598b59e3a07u, 0xbfbfe89139dbd565u,
    0xbfbec739830a1126u, 0xbfbda7276384469eu, 0xbfbc885801bc4b20u, 0xbfbb6ac88dad5b1du,
    0xbfba4e7640b1bc38u, 0xbfb9335e5d594988u, 0xbfb8197e2f40e3f0u, 0xbfb700d30aeac0e8u,
    0xbfb5e95a4d9791cdu, 0xbfb4d3115d207eacu, 0xbfb3bdf5a7d1ee5eu, 0xbfb2aa04a44717a1u,
    0xbfb1973bd1465561u, 0xbfb08598b59e3a06u, 0xbfaeea31c006b87cu, 0xbfaccb73cdddb2d0u,
    0xbfaaaef2d0fb1108u, 0xbfa894aa149fb34bu, 0xbfa67c94f2d4bb65u, 0xbfa466aed42de3f9u,
    0xbfa252f32f8d1840u, 0xbfa0415d89e74440u, 0xbf9c63d2ec14aad7u, 0xbf98492528c8cac5u,
    0xbf9432a925980cbcu, 0xbf90205658935837u, 0xbf882448a388a283u, 0xbf8010157588de69u,
    0xbf70080559588b25u, 0x0000000000000000u, 0x3f7fe02a6b106799u, 0x3f8fc0a8b0fc03c4u,
    0x3f97b91b07d5b126u, 0x3f9f829b0e7832f8u, 0x3fa39e87b9febd68u, 0x3fa77458f632dcffu,
    0x3fab42dd711971b9u, 0x3faf0a30c01162a8u, 0x3fb16536eea37ae3u, 0x3fb341d7961bd1d0u,
    0x3fb51b073f06183cu, 0x3fb6f0d28ae56b4eu, 0x3fb8c345d6319b23u, 0x3fba926d3a4ad562u,
    0x3fbc5e548f5bc743u, 0x3fbe27076e2af2eau, 0x3fbfec9131dbeabcu, 0x3fc0d77e7cd08e5bu,
    0x3fc1b72ad52f67a2u, 0x3fc29552f81ff521u, 0x3fc371fc201e8f75u, 0x3fc44d2b6ccb7d1cu,
    0x3fc526e5e3a1b438u, 0x3fc5ff3070a793d6u, 0x3fc6d60fe719d21bu, 0x3fc7ab890210d907u,
    0x3fc87fa06520c911u, 0x3fc9525a9cf456b6u, 0x3fca23bc1fe2b561u, 0x3fcaf3c94e80bff3u,
    0x3fcbc286742d8cd4u, 0x3fcc8ff7c79a9a20u, 0x3fcd5c216b4fbb94u, 0x3fce27076e2af2e8u,
    0x3fcef0adcbdc5935u, 0x3fcfb9186d5e3e29u, 0x3fd0402594b4d041u, 0x3fd0a324e27390e2u,
    0x3fd1058bf9ae4ad4u, 0x3fd1675cababa60fu, 0x3fd1c898c16999fbu, 0x3fd22941fbcf7966u,
    0x3fd2895a13de86a4u, 0x3fd2e8e2bae11d31u, 0x3fd347dd9a987d56u, 0x3fd3a64c556945eau,
    0x3fd404308686a7e4u, 0x3fd4618bc21c5ec2u, 0x3fd4be5f957778a1u, 0x3fd51aad872df82eu,
};
static const uint64_t REFRT_LOG_LOGC_LO[128] = {
    0x3c756a0f7749e5cdu, 0x3c6acd8a9145ff44u, 0xbc7ee0c6728fffccu, 0xbc4d5f75b9a23ae4u,
    0x3c62908d15f88b63u, 0xbc73840b263acb43u, 0x3c5123615b147a5fu, 0xbc7d8fb4c14c56eeu,
    0xbc55b7648704e721u, 0xbc7152d81af5713au, 0x3c5324f0e8838590u, 0xbc722966f61a3c23u,
    0x3c722dad7fd86088u, 0xbc7e0efadd9db02au, 0x3c550a2dca28b3edu, 0x3c7e9575c2124912u,
    0xbc756fbd28b40935u, 0xbc7b8ce2d07f1cb7u, 0x3c75a74e18a8bb85u, 0x3c324e912b16ec8bu,
    0xbc6d9f5bd0b5b348u, 0xbc5ecca0cdf30143u, 0xbc57754d2238f75fu, 0x3c6f7627ef82f3f0u,
    0x3c68af715b0349a4u, 0x3c53f3adb7b71cbcu, 0x3c6ae58b2c57a4a5u, 0x3c41165504ad749eu,
    0x3c40d4eace1aa537u, 0xbc6bcafa9de97202u, 0x3c652979a7e86605u, 0xbc68a16283fdbd1cu,
    0x3c454aae92cd0b87u, 0xbc66dcd318f4187eu, 0xbc3be3dbaf3ec804u, 0x3c437967087859b9u,
    0xbc6c5961e173bc82u, 0x3c21f5b44c0df7f7u, 0x3c3b8d4b411cadffu, 0x3c50d5604930f137u,
    0x3c6d87e6a354d057u, 0xbc6bea08d2dca256u, 0xbc3d997036941a6du, 0xbc651c7e9efae297u,
    0xbc66e44389934420u, 0x3c50e63a5f01c693u, 0x3c6fd7009902bf32u, 0x3c5ac9f4215f9394u,
    0xbc5eea033743f95bu, 0xbc5401fa71733017u, 0x3c55c734aa6598fcu, 0x3c5002bf768e52d0u,
    0x3c59b5ca203e4259u, 0x3c5478a85704ccb7u, 0x3c4230690020895fu, 0xbc4a36a677b4c8b2u,
    0x3c54c78ba3a3baf6u, 0xbc3da7d0b1e10b2fu, 0xbc3f52eda76b68acu, 0xbc5aea2c72d05c08u,
    0x3c57aac1b3d35680u, 0x3c5dd7009902bf32u, 0x3c37c9f9276f6cd8u, 0x3c4e48fb0500efd5u,
    0xbc468d4eed0b82aeu, 0x3c42ba0b44cfaee5u, 0xbc40413e6505e5f9u, 0x3c39badefe942718u,
    0xbc2ae021b67a9ba8u, 0xbc4c05cf1d753621u, 0xbc08fe7acbca131du, 0x3c3d192d0619fa68u,
    0x3c38cdaf39004193u, 0xbc327c8e8416e717u, 0xbc104b16137f0970u, 0xbc146662d417ceceu,
    0xbc1f96638cf63675u, 0x0000000000000000u, 0xbbce44b7e3711e7fu, 0xbc183092c5964281u,
    0xbc16d80ab38e9430u, 0x3c333e3f04f1ef25u, 0xbc45bfa937f551b7u, 0x3c08d3ca87b92968u,
    0x3c40a34531f67db5u, 0x3c485f325c5bbacdu, 0x3c52189705cf74cau, 0xbc53599f227becbbu,
    0xbc55b61c65e5741au, 0xbc420db323097324u, 0xbc5294d2f5668495u, 0xbc4d7a16eab1e2adu,
    0x3c42eb0bf7c0b0d9u, 0xbc361578001e015au, 0xbc55746b9981b36cu, 0x3c69a5dc5e9030adu,
    0xbc6fbe7ee5c69946u, 0x3c6301771c407dc0u, 0x3c1e6cb62af18a02u, 0x3c47d3d950f87e23u,
    0xbc6546ff8a470d3au, 0xbc5bc60efafc6f6cu, 0x3c6d551d97132e87u, 0xbc61072534a57e7du,
    0xbc69f7fdbfa08d9au, 0xbc626fb3e2b1d1dau, 0x3c624dc46c1ea664u, 0x3c6a3398064df33eu,
    0x3c5cfce744870f57u, 0xbc64f689f8434011u, 0xbc5a37794d03657du, 0xbc461578001e015eu,
    0x3c6e8637950dc20du, 0x3c6355519b0de535u, 0xbc608ec217a5022du, 0x3c7bdcfde8061c03u,
    0x3c03f415699663ecu, 0x3c2ce63eab883727u, 0x3c79f1a39d500e3cu, 0xbc5dbd7ac258a2bdu,
    0x3c77ad24c13f040fu, 0xbc61e99b72bd7bf2u, 0xbc716ea62c048cfbu, 0x3c3cbcd735d03424u,
    0xbc6f79f6c1059cdbu, 0xbc27a42642661c62u, 0xbc54b366b609027au, 0xbc7d8db0a7cc1543u,
};

static inline double refrt_tbl(const uint64_t *t, uint64_t i) { return refrt_from_bits_f64(t[i]); }

/* exp(x) for one double, table-driven (Tang 1989, N = 64; replaces the degree-13 series
 * of b)-c), which float32 still uses).  Every operation is vectorisable.
 * X1) k = round(x 64/ln2) by the shifter (b); r = x - k ln2/64 by two fmas with
 *     ln2/64 = L2HI + L2LO (L2HI = ln2/64 rounded, L2LO = the rest):  fma(-k, L2HI, x)
 *     is EXACT: for k != 0, |x| >= ln2/128, so x is a multiple of 2^-60, k L2HI of
 *     2^-59, and the difference (|.| <= 0.0055 < 2^-7.5) needs at most 53 bits;
 *     r = fma(-k, L2LO, hi) rounds once: <= 2^-53 |r| <= 2^-60.5 relative to e^x.
 * X2) e^x = 2^e T_j e^r, k = 64 e + j, T_j = 2^(j/64) = HI_j (1 + TL_j) (tables above,
 *     TL_j the relative tail, |TL_j| < 2^-53), e^r - 1 = p(r) = r + r^2/2 + ... + r^6/6!
 *     (Taylor, |r| <= 0.00542: truncation r^7/7! <= 2.7e-20, 0.0002 ulp);
 *     y = HI + HI (p + TL): the second term is <= 0.0055 HI, so its roundings (p's
 *     Horner, the sum, the product) count < 0.01 ulp; only the final addition rounds at
 *     full weight.  Bound ~0.52 ulp for normal results (was ~0.62 with the series).
 * X3) 2^e in two factors as f) (e1 = floor(e/2), e2 = e - e1, both biased exponents in
 *     [485, 1535]), so overflow and gradual underflow round once at the last product
 *     (subnormal results: 0.5 + 0.52/2 = 0.76 ulp); cutoffs as g).
 */
static inline double refrt_exp_f64_body(double x)
{
    const double SHIFT = 6755399441055744.0;                 /* 1.5 * 2^52 */
    const double INV = 92.33248261689366;                    /* 64/ln2 */
    const double L2HI = 0.010830424696249145;                /* ln2/64 rounded */
    const double L2LO = 3.623510646634843e-19;               /* ln2/64 - L2HI */
    double t = fma(x, INV, SHIFT);        /* low bits of t = k (X1) */
    double kd = t - SHIFT;
    double hi = fma(-kd, L2HI, x);        /* exact (X1) */
    double r = fma(-kd, L2LO, hi);
    /* X2: p(r) = e^r - 1, Taylor coefficients 1/j!, j = 1..6 */
    double p = r * fma(r, fma(r, fma(r, fma(r, fma(r, 1.3888888888888889e-03,
                                                   8.333333333333333e-03),
                                            4.1666666666666664e-02),
                                     1.6666666666666666e-01), 0.5), 1.0);
    uint64_t bu = refrt_bits_f64(t);
    uint64_t j = bu & 63u;
    double T = refrt_tbl(REFRT_EXP2_HI, j);
    double y = T + T * (p + refrt_tbl(REFRT_EXP2_TL, j));
    /* X3: e + 2048 in [0, 4095] from the low bits; e1 + 1023 = (e + 2048)/2 - 1 */
    uint64_t eb = ((bu >> 6) + 2048u) & 4095u;
    uint64_t e1 = eb >> 1, e2 = eb - e1;
    double s1 = refrt_from_bits_f64((e1 - 1u) << 52);
    double s2 = refrt_from_bits_f64((e2 - 1u) << 52);
    y = (y * s1) * s2;
    uint64_t ux = refrt_bits_f64(x);
    uint64_t big = -(uint64_t)((ux > 0x4086300000000000u) & (ux <= 0x7ff0000000000000u));
    uint64_t tiny = -(uint64_t)((ux > 0xc087500000000000u) & (ux <= 0xfff0000000000000u));
    /* NaN: x + x, so the payload does not depend on which operand the ISA's fma passes */
    uint64_t isn = -(uint64_t)((ux & 0x7fffffffffffffffu) > 0x7ff0000000000000u);
    uint64_t uy = refrt_bits_f64(y);
    uy = (uy & ~(big | tiny | isn)) | (big & 0x7ff0000000000000u) | (isn & refrt_bits_f64(x + x));
    return refrt_from_bits_f64(uy);
}

static inline float refrt_exp_f32_body(float x)
{
    const float SHIFT = 12582912.0f;                       /* 1.5 * 2^23 */
    const float INVLN2 = 1.44269502f;
    const float LN2HI = 0.693145751953125f;                 /* 0x3f317200, 15 bits */
    const float LN2LO = 1.42860677e-06f;                    /* 0x35bfbe8e */

    float t = fmaf(x, INVLN2, SHIFT);
    float kd = t - SHIFT;
    float hi = fmaf(-kd, LN2HI, x);
    float lo = kd * LN2LO;
    float r = hi - lo;
    float rlo = (hi - r) - lo;

    /* Taylor coefficients 1/j!, j = 3..8 (c) */
    float q = 2.48015873e-05f;                        /* 1/8! */
    q = fmaf(q, r, 1.98412698e-04f);                      /* 1/7! */
    q = fmaf(q, r, 1.38888889e-03f);                      /* 1/6! */
    q = fmaf(q, r, 8.33333333e-03f);                      /* 1/5! */
    q = fmaf(q, r, 4.16666667e-02f);                      /* 1/4! */
    q = fmaf(q, r, 1.66666667e-01f);                      /* 1/3! */
    float r2 = r * r;
    float r2lo = fmaf(r, r, -r2);
    float cubic = r2 * (r * q);

    float s = 1.0f + r;
    float e = (1.0f - s) + r;
    float tail = (e + 0.5f * r2) + ((rlo + rlo * r) + (0.5f * r2lo + cubic));
    float y = s + tail;

    float t1 = kd * 0.5f + SHIFT;
    float k1d = t1 - SHIFT;
    float t2 = (kd - k1d) + SHIFT;
    float s1 = refrt_from_bits_f32((refrt_bits_f32(t1) + 127u) << 23);
    float s2 = refrt_from_bits_f32((refrt_bits_f32(t2) + 127u) << 23);
    y = (y * s1) * s2;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t big = -(uint32_t)((ux > 0x42b20000u) & (ux <= 0x7f800000u));    /* 89 < x */
    uint32_t tiny = -(uint32_t)((ux > 0xc2d00000u) & (ux <= 0xff800000u));   /* x < -104 */
    uint32_t isn = -(uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);      /* NaN: x + x */
    uint32_t uy = refrt_bits_f32(y);
    uy = (uy & ~(big | tiny | isn)) | (big & 0x7f800000u) | (isn & refrt_bits_f32(x + x));
    return refrt_from_bits_f32(uy);
}

/* ------------------------------------------------------------------------------ log
 * Contract: y[i] = log(x[i]); log(+-0) = -inf, log(x < 0) = NaN (also -inf), log(+inf) =
 * +inf, log(1) = +0, NaN -> quiet NaN, subnormal x exact-scaled; error < 1 ulp.
 *
 * Design (same rules as exp: branch-free, integer-mask selects, fma only where exact or
 * inlined, bitwise identical across the clones):
 * L1) Subnormal x is scaled by 2^52 (2^23 float), exactly, and k corrected by -52.
 * L2) x = 2^k * m with m in [sqrt(1/2), sqrt(2)): subtracting the bit pattern of sqrt(1/2)
 *     from x's bits puts k in the top 12 (9) bits; m's bits are x's bits minus k << 52.
 *     k is turned into a double without a 64-bit int -> double conversion (none in AVX2):
 *     u = (bits >> 52) is k mod 4096, written into the mantissa of 2^52 (exact), and
 *     4096 is subtracted where u >= 2048.
 * L3) log(m) = log1p(f), f = m - 1 exact (Sterbenz), |f| <= 0.4143.  With s = f/(2+f)
 *     (|s| <= 3 - 2*sqrt(2) = 0.1716):  log1p(f) = 2 atanh(s) = 2s + s*R(s^2), and since
 *     2s = f - s*f:  log1p(f) = f - hfsq + s*(hfsq + R),  hfsq = f^2/2   (fdlibm e_log.c).
 *     R(z) = z*(Lg1 + z*Lg2 + ... + z^6*Lg7), the fdlibm minimax fit, |error| < 2^-58.45
 *     (checked against mpmath: 2^-58.47).  Float: the atanh series 2/3, 2/5, 2/7, 2/9;
 *     truncation 2 z^5/11 * s, i.e. < 2^-29 relative (0.015 ulp).
 * L4) Assembly, leading terms exact: A = k*LN2HI (exact, Cody-Waite as for exp);
 *     A + f = t + te (Fast2Sum: |A| >= 0.69 > |f| when k != 0); f^2 = h + hl exactly
 *     (fma) so hfsq = h/2 + hl/2; t - h/2 = u + ue (Fast2Sum: |t| >= |h/2| always, as
 *     |f| <= 0.414 and |A + f| >= 0.27 for k != 0); then
 *       y = u + ((te + ue) + (s*(h/2 + R) - hl/2 + k*LN2LO)).
 *     Only the final addition rounds at full weight.  k != 0 only when |log x| > 0.34,
 *     so A and f never cancel catastrophically; near x = 1 (k = 0) y = f - f^2/2 + ...
 *     keeps full relative accuracy.
 * L5) Error budget (ulps of the result, worst at f near +0.41 where the tail is largest,
 *     |tail| <= 0.02 against |y| >= 0.34): final rounding 0.5; s = f/(2+f) carries two
 *     roundings (2+f and the division), s*(hfsq + R) two more: ~0.09; the roundings of
 *     the tail sum ~0.07; R 2^-58.5 relative to s (float: truncation 0.015); a few
 *     second-order terms: bound ~0.70 ulp.  Measured: float64 0.60 (mpmath samples),
 *     float32 0.668 (every float in [0.5, 2)); see tests/test_vecmath.py.
 */
/* log(x) for one double, table-driven (Tang 1990; reciprocal table as CORE-MATH / ARM
 * optimized-routines; replaces L3-L5's division and atanh series, which float32 keeps):
 * G1) L1 and L2 as above, but m in [0.6973, 1.3946) (OFF = 0x3fe6500000000000) and
 *     i = the 7 bits of (bits - OFF) below the exponent: the tables' interval of m.
 * G2) r = m INVC_i - 1 = rh + pl exactly: p = m INVC_i, pl = fma(m, INVC_i, -p),
 *     rh = p - 1 (exact, p in [0.99, 1.01]); |r| <= 2^-8.  rh keeps only the bits of
 *     p above 2^-53, so pl (up to 2^-53, i.e. ~2^-45 relative to r) is not negligible:
 *     it enters to first order, log1p(rh + pl) = log1p(rh) + pl (1 - rh) + O(pl r^2)
 *     (the O term < 2^-69: 0.001 ulp).
 * G3) log x = k ln2 + LOGC_i + log1p(r), log1p(r) = r - r^2/2 + ... + r^7/7 (Taylor;
 *     truncation |r|^8/8 <= 2^-67 absolute, and relative to the result ~r in the
 *     interval at 1 (LOGC = 0) |r|^7/8 <= 2^-59: 0.016 ulp).
 * G4) Assembly: Ah + Al = k LN2HI + LOGC_HI_i (Fast2Sum: k LN2HI is exact (32-bit
 *     LN2HI, |k| <= 1126) and |k ln2| > |LOGC| for k != 0); s + se = Ah + rh (Fast2Sum:
 *     |LOGC_i| exceeds every |r| of interval i != the one at 1, where Ah = 0, and
 *     |Ah| >= 0.34 for k != 0); y = s + (se + Al + k LN2LO + LOGC_LO + pl + r^2 P(r)).
 *     The tail is <= 2^-9 |y| away from 1 (r^2/2 against |LOGC| + |r|), so its
 *     roundings count < 0.01 ulp; only the final addition rounds at full weight.
 *     Bound ~0.52 ulp (was 0.70); no division.  Measured: tests/test_vecmath.py.
 */
static inline double refrt_log_f64_body(double x)
{
    const double LN2HI = 6.93147180369123816490e-01;         /* 0x3fe62e42fee00000 */
    const double LN2LO = 1.90821492927058770002e-10;         /* 0x3dea39ef35793c76 */
    uint64_t ux = refrt_bits_f64(x);
    /* L1: positive subnormal -> scale by 2^52 */
    uint64_t sub = -(uint64_t)((ux != 0) & (ux < 0x0010000000000000u));
    uint64_t uxs = (ux & ~sub) | (refrt_bits_f64(x * 4503599627370496.0) & sub);
    /* G1 */
    uint64_t tmp = uxs - 0x3fe6500000000000u;
    uint64_t i = (tmp >> 45) & 127u;
    uint64_t u = tmp >> 52;                                  /* k mod 4096 */
    double kd = refrt_from_bits_f64(0x4330000000000000u | u) - 4503599627370496.0;
    kd -= refrt_from_bits_f64(-(uint64_t)(u >= 2048) & 0x40b0000000000000u);  /* 4096 */
    kd -= refrt_from_bits_f64(sub & 0x404a000000000000u);                        /* 52 */
    double m = refrt_from_bits_f64(uxs - (tmp & 0xfff0000000000000u));
    /* G2 */
    double c = refrt_tbl(REFRT_LOG_INVC, i);
    double p = m * c;
    double pl = fma(m, c, -p);
    double rh = p - 1.0;
    /* G3: P = -1/2 + r/3 - r^2/4 + r^3/5 - r^4/6 + r^5/7 */
    double P = fma(rh, fma(rh, fma(rh, fma(rh, fma(rh, 0.14285714285714285,
                                                   -0.16666666666666666), 0.2),
                                     -0.25), 0.3333333333333333), -0.5);
    /* G4 */
    double A = kd * LN2HI;
    double lc = refrt_tbl(REFRT_LOG_LOGC_HI, i);
    double Ah = A + lc;
    double Al = (A - Ah) + lc;
    double sm = Ah + rh;
    double se = (Ah - sm) + rh;
    double tail = (se + (Al + (kd * LN2LO + refrt_tbl(REFRT_LOG_LOGC_LO, i))))
                  + (fma(-pl, rh, pl) + (rh * rh) * P);
    double y = sm + tail;
    /* specials: +-0 -> -inf; x < 0 (incl. -inf) -> NaN; +inf -> +inf; NaN -> quiet NaN */
    uint64_t uy = refrt_bits_f64(y);
    uint64_t isnan_ = -(uint64_t)((ux & 0x7fffffffffffffffu) > 0x7ff0000000000000u);
    uint64_t zero = -(uint64_t)((ux & 0x7fffffffffffffffu) == 0);
    uint64_t neg = -(uint64_t)(ux > 0x8000000000000000u) & ~isnan_;
    uint64_t pinf = -(uint64_t)(ux == 0x7ff0000000000000u);
    uy = (uy & ~(isnan_ | zero | neg | pinf))
         | (isnan_ & refrt_bits_f64(x + x))
         | (zero & 0xfff0000000000000u)
         | (neg & 0x7ff8000000000000u)
         | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

static inline float refrt_log_f32_body(float x)
{
    const float LN2HI = 0.693145751953125f;                 /* 0x3f317200, 15 bits */
    const float LN2LO = 1.42860677e-06f;                    /* 0x35bfbe8e */
    uint32_t ux = refrt_bits_f32(x);
    uint32_t sub = -(uint32_t)((ux != 0) & (ux < 0x00800000u));
    uint32_t uxs = (ux & ~sub) | (refrt_bits_f32(x * 8388608.0f) & sub);
    uint32_t tmp = uxs - 0x3f3504f3u;                        /* bits of sqrt(1/2) */
    uint32_t u = tmp >> 23;                                  /* k mod 512 */
    float kd = refrt_from_bits_f32(0x4b000000u | u) - 8388608.0f;
    kd -= refrt_from_bits_f32(-(uint32_t)(u >= 256) & 0x44000000u);   /* 512 */
    kd -= refrt_from_bits_f32(sub & 0x41b80000u);                      /* 23 */
    float m = refrt_from_bits_f32(uxs - (tmp & 0xff800000u));
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    /* atanh series: 2/3, 2/5, 2/7, 2/9 (L3) */
    float R = z * fmaf(z, fmaf(z, fmaf(z, 0.222222222f, 0.285714286f), 0.4f), 0.666666667f);
    float A = kd * LN2HI;
    float t = A + f;
    float te = (A - t) + f;
    float h = f * f;
    float hl = fmaf(f, f, -h);
    float hh = 0.5f * h;
    float uu = t - hh;
    float ue = (t - uu) - hh;
    float tail = (te + ue) + ((s * (hh + R) - 0.5f * hl) + kd * LN2LO);
    float y = uu + tail;
    uint32_t uy = refrt_bits_f32(y);
    uint32_t isnan_ = -(uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);
    uint32_t zero = -(uint32_t)((ux & 0x7fffffffu) == 0);
    uint32_t neg = -(uint32_t)(ux > 0x80000000u) & ~isnan_;
    uint32_t pinf = -(uint32_t)(ux == 0x7f800000u);
    uy = (uy & ~(isnan_ | zero | neg | pinf))
         | (isnan_ & refrt_bits_f32(x + x))
         | (zero & 0xff800000u)
         | (neg & 0x7fc00000u)
         | (pinf & 0x7f800000u);
    return refrt_from_bits_f32(uy);
}

REFRT_CLONES
static void refrt_vlog_f64_impl(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_log_f64_body(x[i]);
}

REFRT_CLONES
static void refrt_vlog_f32_impl(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_log_f32_body(x[i]);
}

static inline void refrt_vlog_f64(const double *x, double *y, ptrdiff_t n)
{
    refrt_vlog_f64_impl(x, y, n);
}

static inline void refrt_vlog_f32(const float *x, float *y, ptrdiff_t n)
{
    refrt_vlog_f32_impl(x, y, n);
}

REFRT_CLONES
static void refrt_vexp_f64_impl(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_exp_f64_body(x[i]);
}

REFRT_CLONES
static void refrt_vexp_f32_impl(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = refrt_exp_f32_body(x[i]);
}

static inline void refrt_vexp_f64(const double *x, double *y, ptrdiff_t n)
{
    refrt_vexp_f64_impl(x, y, n);
}

static inline void refrt_vexp_f32(const float *x, float *y, ptrdiff_t n)
{
    refrt_vexp_f32_impl(x, y, n);
}
/* ---------------------------------------------------------------- expm1, log1p, tanh
 * Contracts: y[i] = expm1(x[i]) / log1p(x[i]) / tanh(x[i]), < 1 ulp (tanh < 1 ulp too,
 * registry budget 2), IEEE specials: expm1(-inf) = -1, expm1(+inf) = +inf, expm1(+-0) =
 * +-0; log1p(-1) = -inf, log1p(x < -1) = NaN (also -inf), log1p(+inf) = +inf, log1p(+-0)
 * = +-0; tanh(+-0) = +-0, tanh(+-inf) = +-1; NaN -> quiet NaN.  Same rules as exp/log
 * (a, d): branch-free bodies, integer-mask selects, bitwise identical clones.
 *
 * E1) expm1 reuses exp's reduction (b) x = k ln2 + r + rlo and its Taylor series
 *     without the leading 1: expm1(r) = r + r^2/2 + r^3 q(r), degree N = 14 (float 9).
 *     The result is now as small as |r| (|expm1(r)| >= 0.85 |r|), so the truncation
 *     |r|^(N+1)/(N+1)! counts relative to |r|, not to 1: at |r| = 0.3466,
 *     double: |r|^14/14! / 0.29 = 1.4e-17 = 0.13 ulp at degree 13, hence 14
 *       (|r|^15/15! / 0.29 = 3.3e-19, 0.003 ulp);
 *     float:  |r|^10/10! / 0.29 = 2.5e-11 (0.0004 ulp) at degree 9 (degree 8: 0.012).
 *     p = ph + pl, ph = r + r^2/2 by Fast2Sum (|r^2/2| <= |r|/6), pl collects the
 *     Fast2Sum error, the low part of r^2 (fma), the cubic term and rlo e^r.
 * E2) Reconstruction: expm1(x) = 2^k expm1(r) + (2^k - 1), and 2^k = 2^k1 2^k2 as in
 *     exp (f) so no factor leaves the exponent range:
 *       expm1(x) = 2^k1 (2^k2 p + (2^k2 - 2^-k1)).
 *     T = 2^k2 - 2^-k1 by TwoSum (Th + Tl exactly), 2^k2 ph is exact, Th + 2^k2 ph by
 *     TwoSum (u + ue exactly), then v = u + ((ue + Tl) + 2^k2 pl): only the final
 *     addition rounds at full weight, and the final product by 2^k1 is exact unless it
 *     overflows (then +inf, correctly).  For k = 0 (|x| <= ln2/2) T = 0 and r = x
 *     exactly, so there is no reduction error at all.  Cancellation: 2^k p against
 *     2^k - 1 is worst at k = 1, r = -0.35: |2 p| / |y| = 0.59 / 0.41 = 1.4.
 * E3) Error budget: final rounding 0.5; pl's roundings (|pl| <= 0.02 |p|) and Horner
 *     < 0.05 ulp of p, times 1.4 from E2; truncation 0.003 (float 0.0004): bound
 *     ~0.6 ulp.  Measured: tests/test_vecmath.py (float64 and float32 ~0.55).
 * E4) Cutoffs (integer compares on the bits, NaN fails all of them and propagates):
 *     x > XMAX (710 / 89, as exp) -> +inf;  x < XNEG -> -1: expm1(x) rounds to -1 once
 *     e^x < ulp(1)/4 = 2^-54 (float 2^-25), x < -37.43 (-17.33); XNEG = -38 (-18), and
 *     the arithmetic rounds [XNEG, -37.43] to -1 itself;  |x| < 2^-54 (float 2^-25) ->
 *     x: x + x^2/2 rounds to x there (x^2/2 < ulp(x)/4), which also gives expm1(+-0) =
 *     +-0 (the arithmetic would give +0 for -0).  k is in [-55, 1024] ([-26, 128]), so
 *     2^-k1 <= 2^28 is normal.
 * E5) The body returns v and vl = (u - v) + tail (Fast2Sum), both times 2^k1: the
 *     result as a double-word, so tanh can use expm1 to beyond working precision.
 */
static inline double refrt_expm1_f64_dw(double x, double *lo_out)
{
    const double SHIFT = 6755399441055744.0;                 /* 1.5 * 2^52 */
    const double INVLN2 = 1.4426950408889634;
    const double LN2HI = 6.93147180369123816490e-01;
    const double LN2LO = 1.90821492927058770002e-10;

    double t = fma(x, INVLN2, SHIFT);
    double kd = t - SHIFT;
    double hi = fma(-kd, LN2HI, x);
    double lo = kd * LN2LO;
    double r = hi - lo;
    double rlo = (hi - r) - lo;
    /* Taylor coefficients 1/j!, j = 3..14 (E1) */
    double q = 1.1470745597729725e-11;                  /* 1/14! */
    q = fma(q, r, 1.6059043836821613e-10);
    q = fma(q, r, 2.08767569878681e-09);
    q = fma(q, r, 2.505210838544172e-08);
    q = fma(q, r, 2.755731922398589e-07);
    q = fma(q, r, 2.7557319223985893e-06);
    q = fma(q, r, 2.48015873015873e-05);
    q = fma(q, r, 1.984126984126984e-04);
    q = fma(q, r, 1.388888888888889e-03);
    q = fma(q, r, 8.333333333333333e-03);
    q = fma(q, r, 4.1666666666666664e-02);
    q = fma(q, r, 1.6666666666666666e-01);              /* 1/3! */
    double r2 = r * r;
    double r2lo = fma(r, r, -r2);
    double h = 0.5 * r2;
    double ph = r + h;
    double pe = (r - ph) + h;                           /* Fast2Sum, exact */
    double pl = pe + ((rlo + rlo * r) + (0.5 * r2lo + r2 * (r * q)));
    /* E2: 2^k1, 2^k2, 2^-k1 from the shifter bits (k1 + 1023 in [995, 1535]) */
    double t1 = kd * 0.5 + SHIFT;
    double k1d = t1 - SHIFT;
    double t2 = (kd - k1d) + SHIFT;
    double s1 = refrt_from_bits_f64((refrt_bits_f64(t1) + 1023u) << 52);
    double s2 = refrt_from_bits_f64((refrt_bits_f64(t2) + 1023u) << 52);
    double m1 = refrt_from_bits_f64((1023u - refrt_bits_f64(t1)) << 52);
    double Th = s2 - m1, b1 = Th - s2;
    double Tl = (s2 - (Th - b1)) + (-m1 - b1);          /* TwoSum */
    double a = s2 * ph;                                 /* exact */
    double u = Th + a, b2 = u - Th;
    double ue = (Th - (u - b2)) + (a - b2);             /* TwoSum */
    double tail = (ue + Tl) + s2 * pl;
    double v = u + tail;
    double vl = (u - v) + tail;
    v *= s1;
    vl *= s1;
    /* E4 */
    uint64_t ux = refrt_bits_f64(x);
    uint64_t big = -(uint64_t)((ux > 0x4086300000000000u) & (ux <= 0x7ff0000000000000u));
    uint64_t neg = -(uint64_t)((ux > 0xc043000000000000u) & (ux <= 0xfff0000000000000u));
    uint64_t tiny = -(uint64_t)((ux & 0x7fffffffffffffffu) < 0x3c90000000000000u);
    uint64_t isn = -(uint64_t)((ux & 0x7fffffffffffffffu) > 0x7ff0000000000000u);
    uint64_t sel = big | neg | tiny | isn;
    uint64_t uv = (refrt_bits_f64(v) & ~sel) | (big & 0x7ff0000000000000u)
                  | (neg & 0xbff0000000000000u) | (tiny & ux) | (isn & refrt_bits_f64(x + x));
    *lo_out = refrt_from_bits_f64(refrt_bits_f64(vl) & ~sel);
    return refrt_from_bits_f64(uv);
}

static inline float refrt_expm1_f32_dw(float x, float *lo_out)
{
    const float SHIFT = 12582912.0f;                       /* 1.5 * 2^23 */
    const float INVLN2 = 1.44269502f;
    const float LN2HI = 0.693145751953125f;
    const float LN2LO = 1.42860677e-06f;

    float t = fmaf(x, INVLN2, SHIFT);
    float kd = t - SHIFT;
    float hi = fmaf(-kd, LN2HI, x);
    float lo = kd * LN2LO;
    float r = hi - lo;
    float rlo = (hi - r) - lo;
    /* Taylor coefficients 1/j!, j = 3..9 (E1) */
    float q = 2.7557319e-06f;                           /* 1/9! */
    q = fmaf(q, r, 2.48015873e-05f);
    q = fmaf(q, r, 1.98412698e-04f);
    q = fmaf(q, r, 1.38888889e-03f);
    q = fmaf(q, r, 8.33333333e-03f);
    q = fmaf(q, r, 4.16666667e-02f);
    q = fmaf(q, r, 1.66666667e-01f);                    /* 1/3! */
    float r2 = r * r;
    float r2lo = fmaf(r, r, -r2);
    float h = 0.5f * r2;
    float ph = r + h;
    float pe = (r - ph) + h;
    float pl = pe + ((rlo + rlo * r) + (0.5f * r2lo + r2 * (r * q)));
    float t1 = kd * 0.5f + SHIFT;
    float k1d = t1 - SHIFT;
    float t2 = (kd - k1d) + SHIFT;
    float s1 = refrt_from_bits_f32((refrt_bits_f32(t1) + 127u) << 23);
    float s2 = refrt_from_bits_f32((refrt_bits_f32(t2) + 127u) << 23);
    float m1 = refrt_from_bits_f32((127u - refrt_bits_f32(t1)) << 23);
    float Th = s2 - m1, b1 = Th - s2;
    float Tl = (s2 - (Th - b1)) + (-m1 - b1);
    float a = s2 * ph;
    float u = Th + a, b2 = u - Th;
    float ue = (Th - (u - b2)) + (a - b2);
    float tail = (ue + Tl) + s2 * pl;
    float v = u + tail;
    float vl = (u - v) + tail;
    v *= s1;
    vl *= s1;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t big = -(uint32_t)((ux > 0x42b20000u) & (ux <= 0x7f800000u));     /* 89 < x */
    uint32_t neg = -(uint32_t)((ux > 0xc1900000u) & (ux <= 0xff800000u));     /* x < -18 */
    uint32_t tiny = -(uint32_t)((ux & 0x7fffffffu) < 0x33000000u);           /* 2^-25 */
    uint32_t isn = -(uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);
    uint32_t sel = big | neg | tiny | isn;
    uint32_t uv = (refrt_bits_f32(v) & ~sel) | (big & 0x7f800000u)
                  | (neg & 0xbf800000u) | (tiny & ux) | (isn & refrt_bits_f32(x + x));
    *lo_out = refrt_from_bits_f32(refrt_bits_f32(vl) & ~sel);
    return refrt_from_bits_f32(uv);
}

/* log1p, design (after log, L1-L5):
 * P1) u + c = 1 + x exactly (TwoSum); u >= 2^-53 or 0 for x >= -1, so never subnormal.
 *     u = 2^k m as in log (L2).  log1p(x) = k ln2 + log(m) + log1p(c/u), and
 *     log1p(c/u) = c/u to 2^-106 relative (|c/u| <= 2^-53).
 * P2) k = 0 (1 + x in [sqrt(1/2), sqrt(2))): f = x itself, exactly, with no c term; so
 *     small arguments never pass through the rounded 1 + x (whose error would be
 *     relatively large).  k != 0: f = m - 1 (exact, Sterbenz) and c/u joins the tail;
 *     there |log1p x| >= 0.34, so c/u (<= 2^-53) and its rounding are harmless.
 * P3) Then exactly log's L3-L4 (same R, same double-word assembly): error bound as L5,
 *     ~0.70 ulp.  Measured: tests/test_vecmath.py.
 * P4) Selects: |x| < 2^-54 (float 2^-25) -> x (x - x^2/2 rounds to x; gives +-0);
 *     x = -1 -> -inf; x < -1 (-inf included) -> NaN; +inf -> +inf; NaN -> quiet NaN.
 */
static inline double refrt_log1p_f64_body(double x)
{
    const double LN2HI = 6.93147180369123816490e-01;
    const double LN2LO = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    double uw = 1.0 + x, bb = uw - 1.0;
    double c = (1.0 - (uw - bb)) + (x - bb);            /* TwoSum (P1) */
    uint64_t uu_ = refrt_bits_f64(uw);
    uint64_t tmp = uu_ - 0x3fe6a09e667f3bcdu;
    uint64_t kb = tmp >> 52;
    double kd = refrt_from_bits_f64(0x4330000000000000u | kb) - 4503599627370496.0;
    kd -= refrt_from_bits_f64(-(uint64_t)(kb >= 2048) & 0x40b0000000000000u);
    double m = refrt_from_bits_f64(uu_ - (tmp & 0xfff0000000000000u));
    /* P2: k = 0 -> f = x, no correction */
    uint64_t k0 = -(uint64_t)(kb == 0);
    uint64_t uf = (refrt_bits_f64(x) & k0) | (refrt_bits_f64(m - 1.0) & ~k0);
    double f = refrt_from_bits_f64(uf);
    double corr = refrt_from_bits_f64(refrt_bits_f64(c / uw) & ~k0);
    double s = f / (2.0 + f);
    double z = s * s;
    double R = z * fma(z, fma(z, fma(z, fma(z, fma(z, fma(z, Lg7, Lg6), Lg5), Lg4), Lg3),
                              Lg2), Lg1);
    double A = kd * LN2HI;
    double t = A + f;
    double te = (A - t) + f;
    double h = f * f;
    double hl = fma(f, f, -h);
    double hh = 0.5 * h;
    double uu = t - hh;
    double ue = (t - uu) - hh;
    double tail = (te + ue) + ((s * (hh + R) - 0.5 * hl) + (kd * LN2LO + corr));
    double y = uu + tail;
    /* P4 */
    uint64_t ux = refrt_bits_f64(x);
    uint64_t ax = ux & 0x7fffffffffffffffu;
    uint64_t isnan_ = -(uint64_t)(ax > 0x7ff0000000000000u);
    uint64_t tiny = -(uint64_t)(ax < 0x3c90000000000000u);
    uint64_t m1 = -(uint64_t)(ux == 0xbff0000000000000u);
    uint64_t below = -(uint64_t)((ux > 0xbff0000000000000u) & (ux <= 0xfff0000000000000u));
    uint64_t pinf = -(uint64_t)(ux == 0x7ff0000000000000u);
    uint64_t uy = (refrt_bits_f64(y) & ~(isnan_ | tiny | m1 | below | pinf))
                  | (isnan_ & refrt_bits_f64(x + x)) | (tiny & ux)
                  | (m1 & 0xfff0000000000000u) | (below & 0x7ff8000000000000u)
                  | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

static inline float refrt_log1p_f32_body(float x)
{
    const float LN2HI = 0.693145751953125f;
    const float LN2LO = 1.42860677e-06f;
    float uw = 1.0f + x, bb = uw - 1.0f;
    float c = (1.0f - (uw - bb)) + (x - bb);
    uint32_t uu_ = refrt_bits_f32(uw);
    uint32_t tmp = uu_ - 0x3f3504f3u;
    uint32_t kb = tmp >> 23;
    float kd = refrt_from_bits_f32(0x4b000000u | kb) - 8388608.0f;
    kd -= refrt_from_bits_f32(-(uint32_t)(kb >= 256) & 0x44000000u);
    float m = refrt_from_bits_f32(uu_ - (tmp & 0xff800000u));
    uint32_t k0 = -(uint32_t)(kb == 0);
    uint32_t uf = (refrt_bits_f32(x) & k0) | (refrt_bits_f32(m - 1.0f) & ~k0);
    float f = refrt_from_bits_f32(uf);
    float corr = refrt_from_bits_f32(refrt_bits_f32(c / uw) & ~k0);
    float s = f / (2.0f + f);
    float z = s * s;
    float R = z * fmaf(z, fmaf(z, fmaf(z, 0.222222222f, 0.285714286f), 0.4f), 0.666666667f);
    float A = kd * LN2HI;
    float t = A + f;
    float te = (A - t) + f;
    float h = f * f;
    float hl = fmaf(f, f, -h);
    float hh = 0.5f * h;
    float uu = t - hh;
    float ue = (t - uu) - hh;
    float tail = (te + ue) + ((s * (hh + R) - 0.5f * hl) + (kd * LN2LO + corr));
    float y = uu + tail;
    uint32_t ux = refrt_bits_f32(x);
    uint32_t ax = ux & 0x7fffffffu;
    uint32_t isnan_ = -(uint32_t)(ax > 0x7f800000u);
    uint32_t tiny = -(uint32_t)(ax < 0x33000000u);
    uint32_t m1 = -(uint32_t)(ux == 0xbf800000u);
    uint32_t below = -(uint32_t)((ux > 0xbf800000u) & (ux <= 0xff800000u));
    uint32_t pinf = -(uint32_t)(ux == 0x7f800000u);
    uint32_t uy = (refrt_bits_f32(y) & ~(isnan_ | tiny | m1 | below | pinf))
                  | (isnan_ & refrt_bits_f32(x + x)) | (tiny & ux)
                  | (m1 & 0xff800000u) | (below & 0x7fc00000u)
                  | (pinf & 0x7f800000u);
    return refrt_from_bits_f32(uy);
}

/* tanh, design:
 * T1) tanh|x| = -t / (2 + t),  t = expm1(-2|x|) in [-1, 0]  (from tanh = (1 - e^-2a) /
 *     (1 + e^-2a)), the sign copied from x afterwards.  The argument is <= 0, so
 *     nothing overflows; x < -19 (float -9) gives t = -1 (E4) and the result 1.
 * T2) With t rounded (0.55 ulp) the quotient would carry its error twice near t = -1
 *     (d ln y / d ln t = 2 / (2 + t) -> 2) plus two roundings: up to ~2.3 ulp.  So t is
 *     taken as the double-word th + tl of E5 (error ~0.05 ulp), D = 2 + t = dh + dl
 *     (Fast2Sum, |th| <= 2), q = -th/dh, and one correction step with the exact residual
 *     fma(q, -dh, -th):  y = q + (N - q D)/dh,  N = -(th + tl).  Bound: final rounding
 *     0.5 + 2 x 0.05 from t + the correction's own rounding (2^-53 relative of a term
 *     <= 1 ulp): ~0.62 ulp.
 * T3) Specials: -0 -> the tiny select of E4 gives t = -0, q = +0, sign copied: -0;
 *     +-inf -> t = -1, +-1; NaN propagates (the sign OR keeps it a NaN).
 */
static inline double refrt_tanh_f64_body(double x)
{
    uint64_t ux = refrt_bits_f64(x);
    double nax = refrt_from_bits_f64(ux | 0x8000000000000000u);     /* -|x| */
    double tl, th = refrt_expm1_f64_dw(2.0 * nax, &tl);
    double dh = 2.0 + th;
    double dl = ((2.0 - dh) + th) + tl;                 /* Fast2Sum */
    double q = -th / dh;
    double rho = fma(q, -dh, -th) - (tl + q * dl);      /* N - q D (T2) */
    double y = q + rho / dh;
    /* NaN: x + x (the negations above may flip a NaN's sign bit differently per ISA) */
    uint64_t isn = -(uint64_t)((ux & 0x7fffffffffffffffu) > 0x7ff0000000000000u);
    uint64_t uy = refrt_bits_f64(y) | (ux & 0x8000000000000000u);
    return refrt_from_bits_f64((uy & ~isn) | (isn & refrt_bits_f64(x + x)));
}

static inline float refrt_tanh_f32_body(float x)
{
    uint32_t ux = refrt_bits_f32(x);
    float nax = refrt_from_bits_f32(ux | 0x80000000u);
    float tl, th = refrt_expm1_f32_dw(2.0f * nax, &tl);
    float dh = 2.0f + th;
    float dl = ((2.0f - dh) + th) + tl;
    float q = -th / dh;
    float rho = fmaf(q, -dh, -th) - (tl + q * dl);
    float y = q + rho / dh;
    uint32_t isn = -(uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);       /* NaN: x + x */
    uint32_t uy = refrt_bits_f32(y) | (ux & 0x80000000u);
    return refrt_from_bits_f32((uy & ~isn) | (isn & refrt_bits_f32(x + x)));
}

/* sinh and cosh, design (a = |x|, the sign of sinh copied from x at the end):
 * H1) a <= CUT (22; float 12):  E = expm1(a) as the double-word eh + el (E5), w = 1 + E
 *     = wh + wl (TwoSum), and
 *       sinh a = (E + E/w) / 2      (e^a - e^-a = 1 + E - 1/(1 + E) = E + E/(1 + E)),
 *       cosh a = (w + 1/w) / 2.
 *     Both add two terms of the same sign, so nothing cancels; each quotient is q = n/wh
 *     plus one correction step with the exact residual (as tanh, T2), and the two
 *     leading terms are added by TwoSum: one rounding at full weight, then the exact
 *     halving.  Bound ~0.55 ulp (E's 0.05 double-word error, the corrections' own
 *     roundings below 2^-53 of a term <= 1 ulp).  Small a: E = a (E4 select), E/w = a,
 *     sinh = a exactly; sinh(+-0) = +-0, cosh(0) = 1.
 * H2) a > CUT:  e^-a / e^a < e^-44 (float e^-24), 0.0007 ulp, so both are e^a / 2 =
 *     e^(a - C) (1 + D),  C = ln2 rounded UP to a multiple of 2^-32 (float 2^-15),
 *     D = expm1(C - ln2) = 4.2e-11 (float 2.9e-5), a constant from mpmath.  a - C is
 *     exact (a is a multiple of ulp(a) >= 2^-48 (float 2^-20), C of 2^-32 (2^-15), and
 *     the difference is smaller than a), so e^(a - C) = w from the same expm1 call and
 *     the result is  wh + fma(wh, D, wl):  one rounding at full weight.  C is rounded
 *     up (D > 0) so that w < e^a / 2: w cannot overflow where the result does not
 *     (with C = LN2HI < ln2, w would overflow 1.9e-10 relative below asinh(DBL_MAX)),
 *     and the final addition overflows exactly above asinh(DBL_MAX) = 710.4759
 *     (float 89.416).  Where w is +inf anyway (a = +inf, or a - C past expm1's own
 *     overflow) TwoSum's error term is NaN, so the result is selected to +inf.
 */
#define REFRT_SINHCOSH(T, U, SFX, FMA, CUTBITS, C_, D_, ABSMASK, INFBITS)                 \
static inline T refrt_sinhcosh_##SFX##_body(T x, int want_cosh)                         \
{                                                                                       \
    U ux = refrt_bits_##SFX(x);                                                         \
    U ua = ux & ABSMASK;                                                                \
    T a = refrt_from_bits_##SFX(ua);                                                    \
    U big = -(U)((ua > CUTBITS) & (ua <= INFBITS));                                     \
    U ua2 = (ua & ~big) | (refrt_bits_##SFX(a - C_) & big);                             \
    T el, eh = refrt_expm1_##SFX##_dw(refrt_from_bits_##SFX(ua2), &el);                 \
    T wh = 1 + eh, b0 = wh - 1;                                                         \
    T wl = ((1 - (wh - b0)) + (eh - b0)) + el;               /* TwoSum */              \
    T yb = wh + FMA(wh, D_, wl);                             /* H2 */                  \
    T n = want_cosh ? (T)1 : eh;                             /* H1: n / w */           \
    T q = n / wh;                                                                       \
    T rho = FMA(-q, wh, n) + ((want_cosh ? (T)0 : el) - q * wl);                        \
    T m = want_cosh ? wh : eh;                                                          \
    T ml = want_cosh ? wl : el;                                                         \
    T s = m + q, b1 = s - m;                                                            \
    T se = (m - (s - b1)) + (q - b1);                        /* TwoSum */              \
    T ys = (s + (se + (ml + rho / wh))) * (T)0.5;                                       \
    U uy = (refrt_bits_##SFX(ys) & ~big) | (refrt_bits_##SFX(yb) & big);               \
    U winf = -(U)(refrt_bits_##SFX(wh) == INFBITS);                                    \
    uy = (uy & ~winf) | (winf & INFBITS);                                               \
    uy |= want_cosh ? (U)0 : (ux & ~ABSMASK);                                           \
    U isn = -(U)(ua > INFBITS);                              /* NaN: x + x */          \
    return refrt_from_bits_##SFX((uy & ~isn) | (isn & refrt_bits_##SFX(x + x)));        \
}                                                                                       \
static inline T refrt_sinh_##SFX##_body(T x) { return refrt_sinhcosh_##SFX##_body(x, 0); } \
static inline T refrt_cosh_##SFX##_body(T x) { return refrt_sinhcosh_##SFX##_body(x, 1); }
/* CUT = 22 (float 12); C = 0x3fe62e42ff000000 (0x3f317400); D = expm1(C - ln2) (H2) */
REFRT_SINHCOSH(double, uint64_t, f64, fma, 0x4036000000000000u, 0.6931471806019545,
               4.2009150727693234e-11, 0x7fffffffffffffffu, 0x7ff0000000000000u)
REFRT_SINHCOSH(float, uint32_t, f32, fmaf, 0x41400000u, 0.69317626953125f,
               2.9089395e-05f, 0x7fffffffu, 0x7f800000u)

static inline double refrt_expm1_f64_body(double x) { double l; return refrt_expm1_f64_dw(x, &l); }
static inline float refrt_expm1_f32_body(float x) { float l; return refrt_expm1_f32_dw(x, &l); }

/* One cloned loop per routine and dtype (d); x == y allowed. */
#define REFRT_VLOOP(NAME, T, BODY)                                                     \
REFRT_CLONES                                                                           \
static void NAME##_impl(const T *x, T *y, ptrdiff_t n)                                 \
{                                                                                      \
    for (ptrdiff_t i = 0; i < n; i++) y[i] = BODY(x[i]);                               \
}                                                                                      \
static inline void NAME(const T *x, T *y, ptrdiff_t n) { NAME##_impl(x, y, n); }
REFRT_VLOOP(refrt_vexpm1_f64, double, refrt_expm1_f64_body)
REFRT_VLOOP(refrt_vexpm1_f32, float, refrt_expm1_f32_body)
REFRT_VLOOP(refrt_vlog1p_f64, double, refrt_log1p_f64_body)
REFRT_VLOOP(refrt_vlog1p_f32, float, refrt_log1p_f32_body)
REFRT_VLOOP(refrt_vtanh_f64, double, refrt_tanh_f64_body)
REFRT_VLOOP(refrt_vtanh_f32, float, refrt_tanh_f32_body)
REFRT_VLOOP(refrt_vsinh_f64, double, refrt_sinh_f64_body)
REFRT_VLOOP(refrt_vsinh_f32, float, refrt_sinh_f32_body)
REFRT_VLOOP(refrt_vcosh_f64, double, refrt_cosh_f64_body)
REFRT_VLOOP(refrt_vcosh_f32, float, refrt_cosh_f32_body)

/* ------------------------------------------------------------------ softmax rows
 * Row helpers of the softmax family (refrt/_kernels/softmax.pyx, Design), written here
 * because their selects must be integer bit masks to vectorise (see a): a float compare
 * in a select keeps gcc from if-converting under -ftrapping-math.  All are branch-free
 * loops cloned per ISA level, bitwise identical across the clones.
 *
 * refrt_vmax_*: max over 16 lanes (lane j mod 16, folded in lane order) of the sortable
 *   integer key of each float (sign-magnitude -> two's complement: key = u ^ (0x7ff..f
 *   if negative)), so the compare is an integer max (vpmaxs).  A NaN with the sign bit
 *   clear sorts above +inf and is returned (the caller's non-finite path); a NaN with
 *   the sign bit set sorts below -inf and is skipped (the caller's sum catches it).
 *   n >= 1.
 * refrt_vshift_*: d_j + e_j = x_j - m exactly (TwoSum); where d_j = -inf (x_j = -inf,
 *   or the subtraction overflows) TwoSum's e is NaN and is selected to 0.
 * refrt_vexpsum_*: t_j <- t_j + t_j e_j (exp(d)(1 + e): |e| <= ulp(d)/2, so the
 *   product's rounding is below u^2 t_j and only the addition rounds), then the sum of
 *   the t_j with x_j != m (bitwise) in 16 Sum2 lanes (Ogita-Rump-Oishi: TwoSum per
 *   addition, errors summed per lane), out = {hi, lo, count of x_j == m}.  The entries
 *   equal to the max contribute exactly 1 each and are counted, not summed, so the
 *   small terms are never added to a leading 1 (Design b).  Positive terms: error
 *   <= u S' + n u^2 S'.
 * refrt_vlsm_out_*: y_j = (d_j + e_j) - L as s + (err + e_j), d_j - L = s + err exactly;
 *   where s = -inf the result is s (err is NaN there).
 */
#define REFRT_SOFTMAX_ROWS(T, U, SFX, SIGN, NEGINF)                                    \
REFRT_CLONES                                                                           \
static T refrt_vmax_##SFX(const T *x, ptrdiff_t n)                                     \
{                                                                                      \
    typedef signed_##U S_;                                                             \
    S_ M[16];                                                                          \
    ptrdiff_t full = n - n % 16;                                                       \
    for (int l = 0; l < 16; l++) M[l] = (S_)(NEGINF ^ (SIGN - 1));                     \
    for (ptrdiff_t j = 0; j < full; j += 16)                                           \
        for (int l = 0; l < 16; l++) {                                                 \
            U u; memcpy(&u, x + j + l, sizeof u);                                      \
            S_ k = (S_)(u ^ (-(u >> (8 * sizeof(U) - 1)) & (SIGN - 1)));               \
            M[l] = k > M[l] ? k : M[l];                                                \
        }                                                                              \
    for (ptrdiff_t j = full; j < n; j++) {                                             \
        U u; memcpy(&u, x + j, sizeof u);                                              \
        S_ k = (S_)(u ^ (-(u >> (8 * sizeof(U) - 1)) & (SIGN - 1)));                   \
        M[0] = k > M[0] ? k : M[0];                                                    \
    }                                                                                  \
    S_ m = M[0];                                                                       \
    for (int l = 1; l < 16; l++) m = M[l] > m ? M[l] : m;                              \
    U um = (U)m ^ (-((U)m >> (8 * sizeof(U) - 1)) & (SIGN - 1));                       \
    T r; memcpy(&r, &um, sizeof r);                                                    \
    return r;                                                                          \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vshift_##SFX(const T *x, ptrdiff_t n, T m, T *d, T *e)               \
{                                                                                      \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        T s = x[j] - m, bb = s - x[j];                                                 \
        T err = (x[j] - (s - bb)) + (-m - bb);                                         \
        U us, ue; memcpy(&us, &s, sizeof us); memcpy(&ue, &err, sizeof ue);            \
        ue &= -(U)(us != NEGINF);                                                      \
        d[j] = s; memcpy(e + j, &ue, sizeof ue);                                       \
    }                                                                                  \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vexpsum_##SFX(const T *x, ptrdiff_t n, T m, const T *e, T *t,        \
                                T *out)                                                \
{                                                                                      \
    T S[16], E[16], C[16];                                                             \
    U um; memcpy(&um, &m, sizeof um);                                                  \
    ptrdiff_t full = n - n % 16;                                                       \
    for (int l = 0; l < 16; l++) { S[l] = 0; E[l] = 0; C[l] = 0; }                    \
    for (ptrdiff_t j = 0; j < n; j++) t[j] = t[j] + t[j] * e[j];                       \
    for (ptrdiff_t j = 0; j < full; j += 16)                                           \
        for (int l = 0; l < 16; l++) {                                                 \
            U ux, ut; memcpy(&ux, x + j + l, sizeof ux); memcpy(&ut, t + j + l, sizeof ut); \
            U eq = -(U)(ux == um);                                                     \
            U uv = ut & ~eq, uc = eq & ONE_##SFX;                                      \
            T v, c; memcpy(&v, &uv, sizeof v); memcpy(&c, &uc, sizeof c);              \
            C[l] += c;                                                                 \
            T s = S[l] + v, bb = s - S[l];                                             \
            E[l] += (S[l] - (s - bb)) + (v - bb);                                      \
            S[l] = s;                                                                  \
        }                                                                              \
    for (ptrdiff_t j = full; j < n; j++) {                                             \
        U ux; memcpy(&ux, x + j, sizeof ux);                                           \
        int eq = ux == um;                                                             \
        T v = eq ? 0 : t[j];                                                           \
        C[0] += eq;                                                                    \
        T s = S[0] + v, bb = s - S[0];                                                 \
        E[0] += (S[0] - (s - bb)) + (v - bb);                                          \
        S[0] = s;                                                                      \
    }                                                                                  \
    T hi = S[0], lo = E[0], cnt = C[0];                                                \
    for (int l = 1; l < 16; l++) {                                                     \
        T s = hi + S[l], bb = s - hi;                                                  \
        lo += E[l] + ((hi - (s - bb)) + (S[l] - bb));                                  \
        hi = s;                                                                        \
        cnt += C[l];                                                                   \
    }                                                                                  \
    out[0] = hi; out[1] = lo; out[2] = cnt;                                            \
}                                                                                      \
                                                                                       \
REFRT_CLONES                                                                           \
static void refrt_vlsm_out_##SFX(const T *d, const T *e, ptrdiff_t n, T L, T *y)       \
{                                                                                      \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        T s = d[j] - L, bb = s - d[j];                                                 \
        T err = (d[j] - (s - bb)) + (-L - bb);                                         \
        T r = s + (err + e[j]);                                                        \
        U us, ur; memcpy(&us, &s, sizeof us); memcpy(&ur, &r, sizeof ur);             \
        U inf = -(U)(us == NEGINF);                                                    \
        ur = (ur & ~inf) | (us & inf);                                                 \
        memcpy(y + j, &ur, sizeof ur);                                                 \
    }                                                                                  \
}

typedef int64_t signed_uint64_t;
typedef int32_t signed_uint32_t;
#define ONE_f64 0x3ff0000000000000u
#define ONE_f32 0x3f800000u
REFRT_SOFTMAX_ROWS(double, uint64_t, f64, 0x8000000000000000u, 0xfff0000000000000u)
REFRT_SOFTMAX_ROWS(float, uint32_t, f32, 0x80000000u, 0xff800000u)


/* =================================================== correctly rounded float32
 * refrt_vexp_cr_f32, refrt_vlog_cr_f32, refrt_vlog1p_cr_f32, refrt_vexpm1_cr_f32,
 * refrt_vtanh_cr_f32, refrt_vsigmoid_cr_f32: y[i] = f(x[i]) CORRECTLY ROUNDED (round to
 * nearest even) for every float32 input, IEEE specials as the float routines above.
 * These single elementary functions evaluate internally in DOUBLE: the brief allows a
 * single elementary function to widen when that makes it correctly rounded, and a
 * double evaluation with a ~2^-48 relative error bound decides the float rounding for
 * all but ~1 input in 2^22 (CORE-MATH's approach: Sibidanov, Zimmermann, Glondu, "The
 * CORE-MATH project", ARITH 2022; its binary32 expf/logf do the same).  The composite
 * float32 kernels (softmax, losses) keep the float-only routines above.
 *
 * C1) Rounding test (CORE-MATH's "ub != lb"): the double result v has |v - f(x)| <=
 *     EPS |v| (EPS per function below, from the error budgets C3-C6 with >= 4x margin).
 *     If (float)(v (1 - EPS)) == (float)(v (1 + EPS)), every real number in the interval
 *     rounds to that float (rounding is monotonic), f(x) included: the result is
 *     correct.  This covers subnormal results, overflow to inf and exact cases (v = 1
 *     for exp(0)) uniformly; inf / NaN / 0 give equal ends.  Otherwise the element is
 *     flagged.
 * C2) Loops: blocks of 256; the vector loop writes the rounded results to a block buffer
 *     and ORs the flags; a block with a flag (probability ~ 2 EPS / 2^-24 per element,
 *     ~2^-22) is rescanned by a scalar pass that recomputes the flagged elements with
 *     the long double libm (expl, logl, log1pl, expm1l, tanhl; 64-bit significand,
 *     error < 2^-62 relative) rounded once to float.  The buffer keeps x intact for the
 *     rescan when x == y.  Every input is checked by bench/exhaustive_f32.py (all 2^32
 *     floats, against glibc's double functions, near-boundary cases confirmed with
 *     mpmath); the counts are in docs/accuracy.md.
 * C3) exp core, for z = a float or twice a float (24 significant bits), |z| clamped to
 *     150 (e^150 overflows float, e^-150 underflows it past the last subnormal):
 *       a = z * IH, IH = 64/ln2 to 29 bits: exact (24 + 29 <= 53 bits);
 *       k = round(a) by the shifter 1.5*2^52 (|a| < 2^14), h = fma(z, IL, a - k) with
 *       IL = 64/ln2 - IH: a - k is exact, h = z 64/ln2 - k with one rounding (2^-54);
 *       e^z = 2^(k/64) 2^(h/64), 2^(k/64) = 2^e REFRT_EXP2_HI[j] (1 + TL[j]), k = 64e + j,
 *       S = 2^e HI[j] by adding e to the exponent field (|e| <= 217: normal double);
 *       2^(h/64) = 1 + q(h), q = sum_{i=1..5} c^i h^i / i!, c = ln2/64, |c h| <= 0.00542:
 *       truncation (c h)^6 / 720 <= 3.5e-17 = 2^-54.7 (relative to 1 + q), and relative
 *       to q itself (expm1 near 0) (c h)^5 / 720 <= 6.5e-15 = 2^-47.1.
 *     exp: v = fma(S, q, S) (TL dropped: 2^-53): error <= 2^-54.7 + ~2.5 2^-53 < 2^-51;
 *       EPS = 2^-48.
 *     sigmoid: v = 1 / (1 + e^-x): the two roundings and exp's error, each damped by
 *       e/(1 + e) <= 1: < 2^-50.5, EPS = 2^-48; the clamp gives 1/(1 + e^-150) = 1 for
 *       x = +inf and 1/(1 + e^150) ~ 7e-66 -> +0 for x = -inf; no branch on the sign.
 *     expm1: v = fma(S, q + TL, S - 1): S - 1 is exact for e in {-1, 0} (Sterbenz) and
 *       rounds with 2^-53 |S| < 2^-52 |v| otherwise; the one rounding of q + TL and the
 *       final one; truncation 2^-47.1 relative to q for k = 0 (where S = 1, v = q
 *       exactly evaluated) and the cancellation of S - 1 against S q (at most 2x, k = +-1):
 *       < 2^-46.5 overall.  EPS = 2^-44 (the truncation dominates; with a 6th term it
 *       would be 2^-50 but the flag rate is already ~2^-18).  +-0 -> +-0 selected.
 *     tanh: |x| -> t = expm1(-2|x|) in [-1, 0] as above, tanh|x| = -t / (2 + t), sign
 *       copied; d ln tanh / d ln t = 2/(2 + t) <= 2: < 2^-45.3 + 2^-52, EPS = 2^-43.
 * C4) log core, for a positive normal double w: w = 2^k m, m in [0.6973, 1.3946) by
 *     subtracting OFF's bits (as L2, without subnormals: a float is a normal double);
 *     i = the 7 bits below the exponent of (bits - OFF); r = m INVC[i] - 1 as the exact
 *     double-word rh + rl: p = m INVC[i], pl = fma(m, INVC[i], -p) (exact), rh = p - 1
 *     (exact, p in [0.99, 1.01]); |r| <= 2^-8.  log w = k ln2 + LOGC[i] + log1p(r),
 *     log1p(r) = rh + rl + rh^2 P(rh), P = -1/2 + r/3 - ... - r^4/6 (Taylor, degree 6:
 *     truncation |r|^7/7 <= 2^-58.8 absolute, |r|^6/7 relative in the interval at 1
 *     where the result is ~r: 2^-50.8).  A = k ln2 + LOGC: two roundings, < 2^-52 |A|;
 *     |A + log1p r| >= |A|/3 (|LOGC| exceeds |r| by the interval layout, and k != 0
 *     means |log w| > 0.34): < 2^-49 overall.  EPS = 2^-46.
 *     log: w = x.  log1p: w = 1 + x and its rounding error c = (1 - w) + x, exact where
 *     it matters: for float x with |x| >= 2^-29, 1 + x is exact in double (ulp(x) >=
 *     2^-52), so c = 0; for |x| < 2^-29, w is in the interval at 1 (k = 0, INVC = 1) and
 *     log1p(x) = log1p(rh + (rl + c)), c joins the low part; for x >= 2^53 c's error is
 *     below 2^-53 |log1p x|.  Specials selected on x's bits.
 *     KNOWN DEFECTS (bench/exhaustive_f32.py, all 2^32 inputs): 2 log1p inputs are not
 *     correctly rounded (there were 3: x = 2^53 (0x5a000000), where c = 1 entered r
 *     unscaled, is fixed by dropping c for |x| >= 1, see refrt_crf_log1p_d).  x = 0x35400003 and
 *     0xb53ffffd (+-7.15e-7): hard cases where the long double fallback is not accurate
 *     enough; fix: an exception table or a double-double fallback.  sigmoid: 4 inputs,
 *     x = 3 2^-23, 7 2^-23, -3 2^-24, -7 2^-24 (sigmoid = 1/2 + x/4 - x^3/48: a float
 *     midpoint minus ~2^-69, beyond long double); same fix.  exp, log, expm1, tanh: 0.
 */
#define REFRT_CRF_C1 0.010830424696249145
#define REFRT_CRF_C2 5.86490495505617e-05
#define REFRT_CRF_C3 2.1173137155464776e-07
#define REFRT_CRF_C4 5.732851688640402e-10
#define REFRT_CRF_C5 1.2417843701716925e-12

/* C3: returns S, writes q(h) and the table index j */
static inline double refrt_crf_expcore(double z, double *q, uint64_t *jout)
{
    const double SHIFT = 6755399441055744.0;                 /* 1.5 * 2^52 */
    const double IH = 92.33248257637024, IL = 4.052341881322268e-08;
    uint64_t bz = refrt_bits_f64(z), az = bz & 0x7fffffffffffffffu;
    uint64_t big = -(uint64_t)((az > 0x4062c00000000000u) & (az <= 0x7ff0000000000000u));
    bz = (bz & ~big) | (big & ((bz & 0x8000000000000000u) | 0x4062c00000000000u));
    z = refrt_from_bits_f64(bz);
    double a = z * IH;
    double u = a + SHIFT;
    double kd = u - SHIFT;
    double h = fma(z, IL, a - kd);
    *q = h * fma(h, fma(h, fma(h, fma(h, REFRT_CRF_C5, REFRT_CRF_C4), REFRT_CRF_C3),
                        REFRT_CRF_C2), REFRT_CRF_C1);
    uint64_t bu = refrt_bits_f64(u);
    uint64_t j = bu & 63u;
    *jout = j;
    return refrt_from_bits_f64(REFRT_EXP2_HI[j] + ((bu >> 6) << 52));
}

static inline double refrt_crf_exp_d(float x)
{
    double q; uint64_t j;
    double S = refrt_crf_expcore((double)x, &q, &j);
    return fma(S, q, S);
}

static inline double refrt_crf_sigmoid_d(float x)
{
    double q; uint64_t j;
    double S = refrt_crf_expcore(-(double)x, &q, &j);
    return 1.0 / (1.0 + fma(S, q, S));
}

static inline double refrt_crf_expm1_dd(double z)
{
    double q; uint64_t j;
    double S = refrt_crf_expcore(z, &q, &j);
    return fma(S, q + refrt_tbl(REFRT_EXP2_TL, j), S - 1.0);
}

static inline double refrt_crf_expm1_d(float x)
{
    double v = refrt_crf_expm1_dd((double)x);
    uint64_t zero = -(uint64_t)((refrt_bits_f32(x) & 0x7fffffffu) == 0);
    return refrt_from_bits_f64((refrt_bits_f64(v) & ~zero) | (refrt_bits_f64((double)x) & zero));
}

static inline double refrt_crf_tanh_d(float x)
{
    uint32_t ux = refrt_bits_f32(x);
    double na = -2.0 * (double)refrt_from_bits_f32(ux & 0x7fffffffu);
    double t = refrt_crf_expm1_dd(na);
    double y = -t / (2.0 + t);    /* >= 0; t = +0 for x = +-0 gives y = -0: sign cleared */
    return refrt_from_bits_f64((refrt_bits_f64(y) & 0x7fffffffffffffffu)
                               | ((uint64_t)(ux >> 31) << 63));
}

/* C4 */
static inline double refrt_crf_logcore(double w, double extra_lo)
{
    const double LN2 = 0.6931471805599453;
    uint64_t ix = refrt_bits_f64(w);
    uint64_t tmp = ix - 0x3fe6500000000000u;
    uint64_t i = (tmp >> 45) & 127u;
    uint64_t ku = tmp >> 52;                                  /* k mod 4096 */
    double kd = refrt_from_bits_f64(0x4330000000000000u | ku) - 4503599627370496.0;
    kd -= refrt_from_bits_f64(-(uint64_t)(ku >= 2048) & 0x40b0000000000000u);   /* 4096 */
    double m = refrt_from_bits_f64(ix - (tmp & 0xfff0000000000000u));
    double c = refrt_tbl(REFRT_LOG_INVC, i);
    double p = m * c;
    double pl = fma(m, c, -p);
    double rh = p - 1.0;
    double rl = pl + extra_lo;
    double P = fma(rh, fma(rh, fma(rh, fma(rh, -1.0 / 6, 0.2), -0.25), 1.0 / 3), -0.5);
    double A = fma(kd, LN2, refrt_tbl(REFRT_LOG_LOGC_HI, i));
    return A + (rh + fma(rh * rh, P, rl));
}

static inline double refrt_crf_log_d(float x)
{
    uint32_t ux = refrt_bits_f32(x);
    double y = refrt_crf_logcore((double)x, 0.0);
    uint64_t isnan_ = -(uint64_t)((ux & 0x7fffffffu) > 0x7f800000u);
    uint64_t zero = -(uint64_t)((ux & 0x7fffffffu) == 0);
    uint64_t neg = -(uint64_t)(ux > 0x80000000u) & ~isnan_;
    uint64_t pinf = -(uint64_t)(ux == 0x7f800000u);
    uint64_t uy = (refrt_bits_f64(y) & ~(isnan_ | zero | neg | pinf))
                  | (isnan_ & refrt_bits_f64((double)x + (double)x))
                  | (zero & 0xfff0000000000000u) | (neg & 0x7ff8000000000000u)
                  | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

static inline double refrt_crf_log1p_d(float x)
{
    uint32_t ux = refrt_bits_f32(x);
    double xd = (double)x;
    double w = 1.0 + xd;
    /* c: the rounding error of 1 + x, exact.  It joins r's low part unscaled, which is
     * right only where w ~ 1 (|x| < 2^-29, k = 0); for |x| >= 1 it would need c/w and is
     * below 2^-53 |log1p x| anyway (it is 0 for |x| < 2^52), so it is dropped there:
     * x = 2^53 (c = 1) was the one misrounded input of this kind. */
    double c = (fabs(xd) < 1.0) ? (1.0 - w) + xd : 0.0;
    double y = refrt_crf_logcore(w, c);
    uint32_t ax = ux & 0x7fffffffu;
    uint64_t isnan_ = -(uint64_t)(ax > 0x7f800000u);
    uint64_t zero = -(uint64_t)(ax == 0);
    uint64_t m1 = -(uint64_t)(ux == 0xbf800000u);
    uint64_t below = -(uint64_t)((ux > 0xbf800000u) & (ux <= 0xff800000u));
    uint64_t pinf = -(uint64_t)(ux == 0x7f800000u);
    uint64_t uy = (refrt_bits_f64(y) & ~(isnan_ | zero | m1 | below | pinf))
                  | (isnan_ & refrt_bits_f64(xd + xd)) | (zero & refrt_bits_f64(xd))
                  | (m1 & 0xfff0000000000000u) | (below & 0x7ff8000000000000u)
                  | (pinf & 0x7ff0000000000000u);
    return refrt_from_bits_f64(uy);
}

/* C2 fallbacks: long double libm, one rounding to float */
static float refrt_crf_exp_slow(float x) { return (float)expl((long double)x); }
static float refrt_crf_log_slow(float x) { return (float)logl((long double)x); }
static float refrt_crf_log1p_slow(float x) { return (float)log1pl((long double)x); }
static float refrt_crf_expm1_slow(float x) { return (float)expm1l((long double)x); }
static float refrt_crf_tanh_slow(float x) { return (float)tanhl((long double)x); }
static float refrt_crf_sigmoid_slow(float x)
{
    return (float)(1.0L / (1.0L + expl(-(long double)x)));
}

/* C1: the rounding test; returns the flag (0 or 1) */
static inline uint32_t refrt_crf_hard(double v, double eps)
{
    float lo = (float)(v * (1.0 - eps)), hi = (float)(v * (1.0 + eps));
    return refrt_bits_f32(lo) != refrt_bits_f32(hi);
}

#define REFRT_CRF_BLOCK 256
#define REFRT_CRF_VLOOP(NAME, CORE, EPS, SLOW)                                           \
REFRT_CLONES                                                                           \
static void NAME##_impl(const float *x, float *y, ptrdiff_t n)                         \
{                                                                                      \
    float buf[REFRT_CRF_BLOCK];                                                        \
    for (ptrdiff_t b = 0; b < n; b += REFRT_CRF_BLOCK) {                               \
        ptrdiff_t m = n - b < REFRT_CRF_BLOCK ? n - b : REFRT_CRF_BLOCK;               \
        const float *xb = x + b;                                                       \
        uint32_t bad = 0;                                                              \
        for (ptrdiff_t i = 0; i < m; i++) {                                            \
            double v = CORE(xb[i]);                                                    \
            buf[i] = (float)v;                                                         \
            bad |= refrt_crf_hard(v, EPS);                                             \
        }                                                                              \
        if (bad)                                                                       \
            for (ptrdiff_t i = 0; i < m; i++)                                          \
                if (refrt_crf_hard(CORE(xb[i]), EPS)) buf[i] = SLOW(xb[i]);            \
        memcpy(y + b, buf, (size_t)m * sizeof(float));                                 \
    }                                                                                  \
}                                                                                      \
static inline void NAME(const float *x, float *y, ptrdiff_t n) { NAME##_impl(x, y, n); }

#define REFRT_CRF_EPS_EXP 3.552713678800501e-15       /* 2^-48 */
#define REFRT_CRF_EPS_SIGMOID 3.552713678800501e-15   /* 2^-48 */
#define REFRT_CRF_EPS_EXPM1 5.684341886080802e-14     /* 2^-44 */
#define REFRT_CRF_EPS_TANH 1.1368683772161603e-13     /* 2^-43 */
#define REFRT_CRF_EPS_LOG 1.4210854715202004e-14      /* 2^-46 */
REFRT_CRF_VLOOP(refrt_vexp_cr_f32, refrt_crf_exp_d, REFRT_CRF_EPS_EXP, refrt_crf_exp_slow)
REFRT_CRF_VLOOP(refrt_vsigmoid_cr_f32, refrt_crf_sigmoid_d, REFRT_CRF_EPS_SIGMOID,
                refrt_crf_sigmoid_slow)
REFRT_CRF_VLOOP(refrt_vexpm1_cr_f32, refrt_crf_expm1_d, REFRT_CRF_EPS_EXPM1,
                refrt_crf_expm1_slow)
REFRT_CRF_VLOOP(refrt_vtanh_cr_f32, refrt_crf_tanh_d, REFRT_CRF_EPS_TANH, refrt_crf_tanh_slow)
REFRT_CRF_VLOOP(refrt_vlog_cr_f32, refrt_crf_log_d, REFRT_CRF_EPS_LOG, refrt_crf_log_slow)
REFRT_CRF_VLOOP(refrt_vlog1p_cr_f32, refrt_crf_log1p_d, REFRT_CRF_EPS_LOG, refrt_crf_log1p_slow)

/* Fast path only (no rounding test, no fallback), for bench/exhaustive_f32.py: the
 * double result before rounding, so the script can report how often C1 flags. */
#define REFRT_CRF_RAW(NAME, CORE)                                                      \
REFRT_CLONES                                                                           \
__attribute__((unused)) static void NAME(const float *x, double *v, ptrdiff_t n)       \
{                                                                                      \
    for (ptrdiff_t i = 0; i < n; i++) v[i] = CORE(x[i]);                               \
}
REFRT_CRF_RAW(refrt_raw_exp_f32, refrt_crf_exp_d)
REFRT_CRF_RAW(refrt_raw_sigmoid_f32, refrt_crf_sigmoid_d)
REFRT_CRF_RAW(refrt_raw_expm1_f32, refrt_crf_expm1_d)
REFRT_CRF_RAW(refrt_raw_tanh_f32, refrt_crf_tanh_d)
REFRT_CRF_RAW(refrt_raw_log_f32, refrt_crf_log_d)
REFRT_CRF_RAW(refrt_raw_log1p_f32, refrt_crf_log1p_d)

#endif
