/* SPDX-License-Identifier: Apache-2.0 */
/* Storage types and host conversions. The rounding here (nearest-even, NaN kept quiet, values
 * past the largest finite one rounding to infinity) is the rounding of the kernels' stores, so
 * a tensor converted on the host equals the same tensor converted on the device. */
#include "internal.h"

#include <string.h>

size_t clpsa_dtype_size(clpsa_dtype dtype) {
    switch (dtype) {
    case CLPSA_DTYPE_FP32:
        return 4;
    case CLPSA_DTYPE_FP16:
    case CLPSA_DTYPE_BF16:
        return 2;
    case CLPSA_DTYPE_DEFAULT:
        break;
    }
    return 0;
}

const char *clpsa_dtype_name(clpsa_dtype dtype) {
    switch (dtype) {
    case CLPSA_DTYPE_FP32:
        return "fp32";
    case CLPSA_DTYPE_FP16:
        return "fp16";
    case CLPSA_DTYPE_BF16:
        return "bf16";
    case CLPSA_DTYPE_DEFAULT:
        break;
    }
    return NULL;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN, sign kept */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint16_t float_to_fp16(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (abs >= 0x477ff000u) /* rounds to 65536 or more: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (abs < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* Scaling by 2^24 turns the subnormal half grid into integers; the float add rounds
         * to nearest-even for us. */
        const float scaled = bits_float(abs) * 16777216.0f;
        const float rounded = scaled + 12582912.0f - 12582912.0f; /* 1.5 * 2^23 trick */
        return (uint16_t)(sign | (uint16_t)rounded);
    }
    const uint32_t mantissa_lsb = (abs >> 13) & 1u;
    const uint32_t rebased = abs - 0x38000000u + 0xfffu + mantissa_lsb; /* exponent 127->15 */
    return (uint16_t)(sign | (uint16_t)(rebased >> 13));
}

static float fp16_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        const float value = (float)mantissa * (1.0f / 16777216.0f);
        return bits_float(float_bits(value) | sign);
    }
    if (exponent == 31)
        return bits_float(sign | 0x7f800000u | (mantissa << 13));
    return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

clpsa_status clpsa_convert_from_float(clpsa_dtype dtype, const float *src, void *dst,
                                      size_t count) {
    if (count > 0 && (!src || !dst))
        return CLPSA_ERROR_NULL_ARGUMENT;
    switch (dtype) {
    case CLPSA_DTYPE_FP32:
        if (count > 0)
            memmove(dst, src, count * sizeof(float));
        return CLPSA_OK;
    case CLPSA_DTYPE_FP16:
        for (size_t i = 0; i < count; ++i)
            ((uint16_t *)dst)[i] = float_to_fp16(src[i]);
        return CLPSA_OK;
    case CLPSA_DTYPE_BF16:
        for (size_t i = 0; i < count; ++i)
            ((uint16_t *)dst)[i] = float_to_bf16(src[i]);
        return CLPSA_OK;
    case CLPSA_DTYPE_DEFAULT:
        break;
    }
    return CLPSA_ERROR_INVALID_VALUE;
}

clpsa_status clpsa_convert_to_float(clpsa_dtype dtype, const void *src, float *dst, size_t count) {
    if (count > 0 && (!src || !dst))
        return CLPSA_ERROR_NULL_ARGUMENT;
    switch (dtype) {
    case CLPSA_DTYPE_FP32:
        if (count > 0)
            memmove(dst, src, count * sizeof(float));
        return CLPSA_OK;
    case CLPSA_DTYPE_FP16:
        for (size_t i = 0; i < count; ++i)
            dst[i] = fp16_to_float(((const uint16_t *)src)[i]);
        return CLPSA_OK;
    case CLPSA_DTYPE_BF16:
        for (size_t i = 0; i < count; ++i)
            dst[i] = bits_float((uint32_t)((const uint16_t *)src)[i] << 16);
        return CLPSA_OK;
    case CLPSA_DTYPE_DEFAULT:
        break;
    }
    return CLPSA_ERROR_INVALID_VALUE;
}
