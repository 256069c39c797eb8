/*
 * activation.c: the activation functions of the seed and their derivatives.
 *
 *   step(x)    = 0 if x < t, 1 if x >= t       (the seed shows t = 2, then t = 0)
 *   sigmoid(x) = 1 / (1 + e^-x)
 *   identity, tanh, relu                        (what users of any MLP library expect)
 *
 * Each derivative is computed from the layer's stored output, never from its input,
 * so the backward pass needs no exponential: sigmoid' = s(1 - s), tanh' = 1 - t^2,
 * relu' = [out > 0], identity' = 1, and step' = 0 (everywhere it exists: this is why
 * a step network cannot learn by gradient descent).
 */
#ifndef REAL
#include "internal.h"

#define FN_SELF "activation.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

void T(fn_activation)(int act, int64_t n, const REAL *z, REAL *out, REAL threshold)
{
    switch (act) {
    case FN_SIGMOID: /* 1 / (1 + e^-z), stable and vectorised: target_body.h */
        T(fn_config_get)()->sigmoid(n, z, out);
        break;
    case FN_TANH: /* from e^-2|z| - 1, vectorised: target_body.h */
        T(fn_config_get)()->tanh(n, z, out);
        break;
    case FN_RELU: /* z > 0 ? z : 0, NaN passing through; by masks: target_body.h */
        T(fn_config_get)()->relu(n, z, out);
        break;
    case FN_STEP:
        for (int64_t i = 0; i < n; i++)
            out[i] = z[i] >= threshold ? 1 : (z[i] != z[i] ? z[i] : 0);
        break;
    default: /* FN_IDENTITY */
        if (out != z)
            for (int64_t i = 0; i < n; i++)
                out[i] = z[i];
        break;
    }
}

void T(fn_derivative_mul)(int act, int64_t n, const REAL *out, REAL *row)
{
    switch (act) {
    case FN_SIGMOID: /* row *= out (1 - out), vectorised: target_body.h */
        T(fn_config_get)()->sigmoid_deriv_mul(n, out, row);
        break;
    case FN_TANH: /* row *= 1 - out^2, vectorised: target_body.h */
        T(fn_config_get)()->tanh_deriv_mul(n, out, row);
        break;
    case FN_RELU: /* row where out > 0, else row * 0 (NaN and inf stay visible): masks */
        T(fn_config_get)()->relu_deriv_mul(n, out, row);
        break;
    case FN_STEP:
        for (int64_t i = 0; i < n; i++)
            row[i] *= 0;
        break;
    default: /* FN_IDENTITY: act' = 1 */
        break;
    }
}

void T(fn_activation_derivative)(int act, int64_t n, const REAL *out, REAL *dout)
{
    for (int64_t i = 0; i < n; i++)
        dout[i] = 1;
    T(fn_derivative_mul)(act, n, out, dout);
}

#endif
