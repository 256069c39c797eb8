/*
 * microkernel_generic.c: the per-target kernels of target_body.h (micro-kernel, small
 * product, sigmoid) compiled for the baseline target (SSE2 on x86-64, whatever the
 * compiler targets elsewhere). The portable fallback: 4 x 8 floats / 4 x 4 doubles.
 */
#include "internal.h"

#define ISA(name) name##_generic
#define ISA_NAME "generic"
#define VEC_BYTES 16 /* xmm */
#define MR 4
#define ROWS FN_ROWS4
#define KC 256
#define MC 64
#include "target_body.h"
