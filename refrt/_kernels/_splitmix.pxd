# cython: language_level=3
# SplitMix64 (catalog §1.11, NN/Runtime/Autograd/TorchLean/Random.lean) in uint64
# arithmetic (wrap-around is the definition), shared by misc.pyx (dropout's mask) and
# misc2.pyx (rand_uniform): splitmix64(x): z = x + 0x9e3779b97f4a7c15;
# z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9; z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
# return z ^ (z >> 31).
from libc.stdint cimport uint64_t


cdef inline uint64_t splitmix64(uint64_t x) noexcept nogil:
    cdef uint64_t z = x + <uint64_t>0x9e3779b97f4a7c15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94d049bb133111ebULL
    return z ^ (z >> 31)
