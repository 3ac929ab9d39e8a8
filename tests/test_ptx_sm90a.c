/* SPDX-License-Identifier: Apache-2.0 */
/* The PTX rewriter of the nvidia-wgmma variants (src/ptx_sm90a.c): text in, text out, so it is
 * tested here on every machine, the GPU being needed only to run what it makes. */
#include "../src/ptx_sm90a.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static char *rewrite(const char *ptx, const char **why) {
    size_t size = 0;
    *why = NULL;
    char *out = clpsa__ptx_enable_sm90a(ptx, strlen(ptx), &size, why);
    if (out)
        assert_int_equal(size, strlen(out));
    return out;
}

/* What NVIDIA's OpenCL compiler emits, in miniature: the markers go, the target gains its `a`,
 * the version rises to 8.0, and nothing else changes. */
static void test_rewrites_markers_target_and_version(void **state) {
    (void)state;
    const char *ptx =
        "//\n.version 7.8\n.target sm_90, texmode_independent\n"
        ".address_size 64\n\t// begin inline asm\n"
        "\t//clpsa-sm90a:wgmma.fence.sync.aligned;\n"
        "{\n.reg .pred p;\n//clpsa-sm90a:wgmma.mma_async.sync.aligned {%f1}, %rd2;\n}\n";
    const char *why = NULL;
    char *out = rewrite(ptx, &why);
    assert_non_null(out);
    assert_string_equal(out, "//\n.version 8.0\n.target sm_90a, texmode_independent\n"
                             ".address_size 64\n\t// begin inline asm\n"
                             "\twgmma.fence.sync.aligned;\n"
                             "{\n.reg .pred p;\nwgmma.mma_async.sync.aligned {%f1}, %rd2;\n}\n");
    free(out);
}

/* A version of 8.0 or later stays as it is; `.target sm_90` at the end of the text works. */
static void test_keeps_newer_version(void **state) {
    (void)state;
    const char *why = NULL;
    char *out = rewrite(".version 8.5\n//clpsa-sm90a:x;\n.target sm_90", &why);
    assert_non_null(out);
    assert_string_equal(out, ".version 8.5\nx;\n.target sm_90a");
    free(out);
}

/* Refusals, each with its reason: another target (older, newer, already sm_90a), no target,
 * no marker (a compiler that drops inline comments). */
static void test_refuses_what_it_cannot_rewrite(void **state) {
    (void)state;
    static const char *const wrong_target[] = {
        ".version 8.0\n.target sm_86\n//clpsa-sm90a:x;\n",
        ".version 8.0\n.target sm_90a\n//clpsa-sm90a:x;\n",
        ".version 8.0\n.target sm_900\n//clpsa-sm90a:x;\n",
        ".version 8.0\n//clpsa-sm90a:x;\n",
        "",
    };
    const char *why = NULL;
    for (size_t i = 0; i < sizeof wrong_target / sizeof wrong_target[0]; ++i) {
        assert_null(rewrite(wrong_target[i], &why));
        assert_non_null(strstr(why, "sm_90"));
    }
    assert_null(rewrite(".version 7.5\n.target sm_90\nmov.u32 %r1, 0;\n", &why));
    assert_non_null(strstr(why, "marker"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrites_markers_target_and_version),
        cmocka_unit_test(test_keeps_newer_version),
        cmocka_unit_test(test_refuses_what_it_cannot_rewrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
