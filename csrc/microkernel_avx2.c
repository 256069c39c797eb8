/*
 * microkernel_avx2.c: the per-target kernels of target_body.h (micro-kernel, small
 * product, sigmoid) compiled for AVX2 + FMA (-mavx2 -mfma); called only when the CPU has
 * both. The micro-tile is 6 x 16 floats / 6 x 8 doubles: 12 ymm accumulators, two B
 * registers and a broadcast A value in the 16 registers.
 */
#include "internal.h"

#define ISA(name) name##_avx2
#define ISA_NAME "avx2"
#define VEC_BYTES 32 /* ymm */
#define MR 6
#define ROWS FN_ROWS6
#define KC 256
#define MC 72
#include "target_body.h"
