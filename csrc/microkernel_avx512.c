/*
 * microkernel_avx512.c: the per-target kernels of target_body.h (micro-kernel, small
 * product, sigmoid) compiled for AVX-512 (-mavx512f -mavx512dq); called only when the
 * CPU and OS support it. The micro-tile is 8 x 32 floats / 8 x 16 doubles: 16 zmm
 * accumulators, two B registers and a broadcast A value. 8 rows divide the batch sizes
 * and layer widths networks use (32, 64, 128, 784, 1024), so few tiles are edge tiles.
 */
#include "internal.h"

#define ISA(name) name##_avx512
#define ISA_NAME "avx512"
#define VEC_BYTES 64 /* zmm */
#define MR 8
#define ROWS FN_ROWS8
#define KC 256
#define MC 96
#include "target_body.h"
