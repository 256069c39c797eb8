/*
 * instantiate.h: compiles the kernel file named by FN_SELF twice, once with REAL = float
 * and names suffixed _f32, once with REAL = double and names suffixed _f64. Each kernel
 * file is written once:
 *
 *     #ifndef REAL
 *     #include "internal.h"
 *     #define FN_SELF "loss.c"
 *     #include "instantiate.h"
 *     #else
 *     ... the body, in terms of REAL and T(name) ...
 *     #endif
 */
#define REAL float
#define T(name) FN_CAT(name, f32)
#include FN_SELF
#undef REAL
#undef T

#define REAL double
#define T(name) FN_CAT(name, f64)
#include FN_SELF
#undef REAL
#undef T
