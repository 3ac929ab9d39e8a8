/* SPDX-License-Identifier: Apache-2.0 */
/* Status codes, version, dtype names and the host storage conversions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    clpsa_status status;
    int value;
    const char *name;
} all_statuses[] = {
#define X(name, value, sentence) {name, value, #name},
    CLPSA_STATUS_LIST(X)
#undef X
};
#define STATUS_COUNT (sizeof all_statuses / sizeof all_statuses[0])

static void test_status_names_and_sentences(void **state) {
    (void)state;
    for (size_t i = 0; i < STATUS_COUNT; ++i) {
        assert_int_equal((int)all_statuses[i].status, all_statuses[i].value);
        assert_string_equal(clpsa_status_name(all_statuses[i].status), all_statuses[i].name);
        const char *sentence = clpsa_status_string(all_statuses[i].status);
        assert_non_null(sentence);
        assert_true(strlen(sentence) > 5);
        for (size_t j = i + 1; j < STATUS_COUNT; ++j) {
            assert_int_not_equal(all_statuses[i].value, all_statuses[j].value);
            assert_string_not_equal(sentence, clpsa_status_string(all_statuses[j].status));
        }
    }
    assert_string_equal(clpsa_status_name((clpsa_status)12345), "CLPSA_UNKNOWN_STATUS");
    assert_string_equal(clpsa_status_string((clpsa_status)-1), "unknown status");
}

/* Pinned values: programs compiled against an older header must keep working. */
static void test_status_values_are_pinned(void **state) {
    (void)state;
    assert_int_equal(CLPSA_OK, 0);
    assert_int_equal(CLPSA_ERROR_NULL_ARGUMENT, 1);
    assert_int_equal(CLPSA_ERROR_INVALID_SHAPE, 3);
    assert_int_equal(CLPSA_ERROR_BUILD_FAILED, 8);
    assert_int_equal(CLPSA_ERROR_OUT_OF_MEMORY, 9);
    assert_int_equal(CLPSA_ERROR_INVALID_FILE, 13);
}

static void test_version(void **state) {
    (void)state;
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", CLPSA_VERSION_MAJOR, CLPSA_VERSION_MINOR,
             CLPSA_VERSION_PATCH);
    assert_string_equal(clpsa_version(), expected);
    assert_int_equal(clpsa_version_number(), CLPSA_VERSION_NUMBER);
}

static void test_dtype_names_and_sizes(void **state) {
    (void)state;
    assert_int_equal(clpsa_dtype_size(CLPSA_DTYPE_FP32), 4);
    assert_int_equal(clpsa_dtype_size(CLPSA_DTYPE_FP16), 2);
    assert_int_equal(clpsa_dtype_size(CLPSA_DTYPE_BF16), 2);
    assert_int_equal(clpsa_dtype_size(CLPSA_DTYPE_DEFAULT), 0);
    assert_int_equal(clpsa_dtype_size((clpsa_dtype)99), 0);
    assert_string_equal(clpsa_dtype_name(CLPSA_DTYPE_FP16), "fp16");
    assert_null(clpsa_dtype_name((clpsa_dtype)99));
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Every fp16 and bf16 bit pattern survives widening and narrowing (NaNs stay NaN). */
static void test_half_round_trip_exhaustive(void **state) {
    (void)state;
    const clpsa_dtype types[2] = {CLPSA_DTYPE_FP16, CLPSA_DTYPE_BF16};
    for (int t = 0; t < 2; ++t) {
        for (uint32_t pattern = 0; pattern <= 0xffffu; ++pattern) {
            const uint16_t h = (uint16_t)pattern;
            float f = 0.0f;
            uint16_t back = 0;
            assert_int_equal(clpsa_convert_to_float(types[t], &h, &f, 1), CLPSA_OK);
            assert_int_equal(clpsa_convert_from_float(types[t], &f, &back, 1), CLPSA_OK);
            if (isnan(f))
                assert_true((types[t] == CLPSA_DTYPE_FP16 ? (back & 0x7c00u) == 0x7c00u
                                                          : (back & 0x7f80u) == 0x7f80u) &&
                            (back & (types[t] == CLPSA_DTYPE_FP16 ? 0x3ffu : 0x7fu)) != 0);
            else
                assert_int_equal(back, h);
        }
    }
}

/* Known values, computed by hand: ties go to even, overflow goes to infinity, subnormals. */
static void test_fp16_rounding(void **state) {
    (void)state;
    const struct {
        float in;
        uint16_t out;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},              /* largest finite */
        {65519.99f, 0x7bff},             /* just below the rounding point */
        {65520.0f, 0x7c00},              /* ties to even -> infinity */
        {1.0f + 1.0f / 2048.0f, 0x3c00}, /* tie between 1 and 1+2^-10: even is 1 */
        {1.0f + 3.0f / 2048.0f, 0x3c02}, /* tie between 1+2^-10 and 1+2^-9: even is up */
        {5.9604645e-08f, 0x0001},        /* 2^-24, smallest subnormal */
        {2.9802322e-08f, 0x0000},        /* 2^-25: tie to even (zero) */
        {4.4703484e-08f, 0x0001},        /* 1.5 * 2^-25 rounds up */
        {6.1035156e-05f, 0x0400},        /* 2^-14, smallest normal */
        {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        uint16_t out = 0;
        assert_int_equal(clpsa_convert_from_float(CLPSA_DTYPE_FP16, &cases[i].in, &out, 1),
                         CLPSA_OK);
        if (out != cases[i].out)
            fail_msg("fp16(%a) = 0x%04x, expected 0x%04x", (double)cases[i].in, out, cases[i].out);
    }
    const float inf = INFINITY;
    uint16_t out = 0;
    clpsa_convert_from_float(CLPSA_DTYPE_FP16, &inf, &out, 1);
    assert_int_equal(out, 0x7c00);
}

static void test_bf16_rounding(void **state) {
    (void)state;
    const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 */
        {0x3f808000u, 0x3f80}, /* tie, even stays */
        {0x3f818000u, 0x3f82}, /* tie, odd rounds up */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to infinity */
        {0xff800000u, 0xff80}, /* -inf */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const float in = float_of(cases[i].in);
        uint16_t out = 0;
        assert_int_equal(clpsa_convert_from_float(CLPSA_DTYPE_BF16, &in, &out, 1), CLPSA_OK);
        if (out != cases[i].out)
            fail_msg("bf16(0x%08x) = 0x%04x, expected 0x%04x", cases[i].in, out, cases[i].out);
    }
    const float nan_in = float_of(0x7f800001u); /* signalling NaN whose payload is low bits */
    uint16_t out = 0;
    clpsa_convert_from_float(CLPSA_DTYPE_BF16, &nan_in, &out, 1);
    assert_true((out & 0x7f80u) == 0x7f80u && (out & 0x7fu) != 0); /* still NaN */
    assert_true(bits_of(1.0f) == 0x3f800000u);
}

static void test_convert_rejects_bad_arguments(void **state) {
    (void)state;
    float f = 1.0f;
    uint16_t h = 0;
    assert_int_equal(clpsa_convert_from_float((clpsa_dtype)42, &f, &h, 1),
                     CLPSA_ERROR_INVALID_VALUE);
    assert_int_equal(clpsa_convert_to_float(CLPSA_DTYPE_DEFAULT, &h, &f, 1),
                     CLPSA_ERROR_INVALID_VALUE);
    assert_int_equal(clpsa_convert_from_float(CLPSA_DTYPE_FP16, NULL, &h, 1),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_convert_to_float(CLPSA_DTYPE_FP16, &h, NULL, 1),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_convert_to_float(CLPSA_DTYPE_FP16, NULL, NULL, 0), CLPSA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_and_sentences),
        cmocka_unit_test(test_status_values_are_pinned),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_dtype_names_and_sizes),
        cmocka_unit_test(test_half_round_trip_exhaustive),
        cmocka_unit_test(test_fp16_rounding),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_convert_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
