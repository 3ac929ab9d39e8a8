/* SPDX-License-Identifier: Apache-2.0 */
/* Token orderings (clpsa_ordering_permutation): every ordering is a bijection that keeps the
 * text tokens at the end; the Hilbert curve starts at the origin, moves by face steps only,
 * reduces to the 1-D and 2-D curves on flat grids and keeps blocks compact; tiles follow
 * hand-computed orders; bad input is rejected without touching the output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>

#include "support/test_support.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct grid {
    int t, h, w;
} grid;

static const grid fixed_grids[] = {
    {1, 1, 1},   {1, 1, 7}, {1, 7, 1},   {7, 1, 1},    {2, 3, 5},    {3, 5, 7},
    {7, 11, 13}, {4, 8, 8}, {8, 16, 16}, {5, 6, 9},    {16, 30, 52}, {1, 30, 52},
    {2, 2, 2},   {3, 3, 3}, {2, 1, 9},   {13, 32, 32}, {9, 9, 9},    {1, 31, 45},
};
#define FIXED_GRID_COUNT (sizeof fixed_grids / sizeof fixed_grids[0])

#define POISON INT32_C(-7)
#define CANARY INT32_C(0x5a5a5a5a)

static size_t video_tokens(grid g) {
    return (size_t)g.t * (size_t)g.h * (size_t)g.w;
}

static const char *ordering_name(clpsa_ordering o) {
    return o == CLPSA_ORDER_RASTER    ? "raster"
           : o == CLPSA_ORDER_HILBERT ? "hilbert"
           : o == CLPSA_ORDER_TILES   ? "tiles"
                                      : "unknown";
}

/* The permutation, computed into a poisoned buffer with a canary after its end. */
static int32_t *permutation(clpsa_ordering o, grid g, const int *tile, int text_tokens) {
    const size_t n = video_tokens(g) + (size_t)text_tokens;
    int32_t *perm = malloc((n + 1) * sizeof *perm);
    assert_non_null(perm);
    for (size_t i = 0; i < n; ++i)
        perm[i] = POISON;
    perm[n] = CANARY;
    const clpsa_status status =
        clpsa_ordering_permutation(o, g.t, g.h, g.w, tile, text_tokens, perm);
    if (status != CLPSA_OK)
        ts_fail("%s %d x %d x %d (text %d): %s", ordering_name(o), g.t, g.h, g.w, text_tokens,
                clpsa_status_name(status));
    assert_int_equal(perm[n], CANARY);
    return perm;
}

/* Every position holds a distinct token and the text tokens map to themselves. */
static void check_bijection(clpsa_ordering o, grid g, const int32_t *perm, int text_tokens) {
    const size_t video = video_tokens(g), n = video + (size_t)text_tokens;
    unsigned char *seen = calloc(n, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; ++i) {
        if (perm[i] < 0 || (size_t)perm[i] >= n || seen[perm[i]])
            ts_fail("%s %d x %d x %d: position %zu holds %d (out of range or repeated)",
                    ordering_name(o), g.t, g.h, g.w, i, (int)perm[i]);
        seen[perm[i]] = 1;
        if (i >= video && (size_t)perm[i] != i)
            ts_fail("%s %d x %d x %d: text position %zu holds %d", ordering_name(o), g.t, g.h, g.w,
                    i, (int)perm[i]);
    }
    free(seen);
}

static void check_all_orderings(grid g, int text_tokens) {
    static const int tiles[4][3] = {{0, 0, 0}, {1, 2, 2}, {3, 5, 7}, {1, 1, 1}};
    const clpsa_ordering orders[2] = {CLPSA_ORDER_RASTER, CLPSA_ORDER_HILBERT};
    for (int o = 0; o < 2; ++o) {
        int32_t *perm = permutation(orders[o], g, NULL, text_tokens);
        check_bijection(orders[o], g, perm, text_tokens);
        free(perm);
    }
    for (int k = 0; k < 4; ++k) {
        int32_t *perm = permutation(CLPSA_ORDER_TILES, g, tiles[k], text_tokens);
        check_bijection(CLPSA_ORDER_TILES, g, perm, text_tokens);
        free(perm);
    }
}

static void test_raster_is_identity(void **state) {
    (void)state;
    for (size_t s = 0; s < FIXED_GRID_COUNT; ++s) {
        int32_t *perm = permutation(CLPSA_ORDER_RASTER, fixed_grids[s], NULL, 5);
        for (size_t i = 0; i < video_tokens(fixed_grids[s]) + 5; ++i)
            assert_int_equal(perm[i], (int32_t)i);
        free(perm);
    }
}

static void test_bijections_fixed_grids(void **state) {
    (void)state;
    ts_case_begin("ordering_bijections_fixed");
    for (size_t s = 0; s < FIXED_GRID_COUNT; ++s) {
        check_all_orderings(fixed_grids[s], 0);
        check_all_orderings(fixed_grids[s], 3);
    }
}

static int random_int(ts_rng *rng, int lo, int hi) {
    return lo + (int)(ts_rng_next(rng) % (uint64_t)(hi - lo + 1));
}

static grid random_grid(ts_rng *rng) {
    return (grid){random_int(rng, 1, 24), random_int(rng, 1, 48), random_int(rng, 1, 64)};
}

static void test_bijections_random_grids(void **state) {
    (void)state;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin("ordering_bijections_random"));
    for (int s = 0; s < 40; ++s) {
        const grid g = random_grid(&rng);
        const int text_tokens = random_int(&rng, 0, 20);
        const int tile[3] = {random_int(&rng, 1, 5), random_int(&rng, 1, 9),
                             random_int(&rng, 1, 9)};
        check_all_orderings(g, text_tokens);
        int32_t *perm = permutation(CLPSA_ORDER_TILES, g, tile, text_tokens);
        check_bijection(CLPSA_ORDER_TILES, g, perm, text_tokens);
        free(perm);
    }
}

static void coords(grid g, int32_t token, int c[3]) {
    c[2] = token % g.w;
    c[1] = token / g.w % g.h;
    c[0] = token / g.w / g.h;
}

/* Counts the Hilbert curve's steps to a cell that is not a face neighbour: diagonal ones
 * (every coordinate changes by at most 1) and jumps (the rest). */
static void hilbert_steps(grid g, long *diagonal, long *jumps) {
    int32_t *perm = permutation(CLPSA_ORDER_HILBERT, g, NULL, 0);
    check_bijection(CLPSA_ORDER_HILBERT, g, perm, 0);
    if (perm[0] != 0)
        ts_fail("hilbert %d x %d x %d starts at token %d, not at the origin", g.t, g.h, g.w,
                (int)perm[0]);
    *diagonal = 0;
    *jumps = 0;
    for (size_t i = 1; i < video_tokens(g); ++i) {
        int a[3], b[3], longest = 0, sum = 0;
        coords(g, perm[i - 1], a);
        coords(g, perm[i], b);
        for (int k = 0; k < 3; ++k) {
            const int delta = abs(a[k] - b[k]);
            longest = delta > longest ? delta : longest;
            sum += delta;
        }
        *jumps += longest > 1;
        *diagonal += longest == 1 && sum > 1;
    }
    free(perm);
}

/* The bound asserted is 0 diagonal steps, for every grid. Why it holds: colour cells by the
 * parity of t + y + x; a face step changes colour, so a box's curve can run from its origin to
 * the far cell of its major edge (the rule that chains the parts of a recursive split) with
 * face steps only iff the major edge is even or all three edges are odd. Classic gilbert3d
 * halves edges without looking at that, so odd grids get diagonal steps (measured with a
 * re-implementation of its splits: 22 on 7 x 11 x 13, 248 on 31 x 31 x 31). Ours leads with an even
 * edge when the grid has one and the cell count is even, and picks cut parities (and, where needed,
 * another split kind) so every part satisfies the rule again; such a split exists for every box
 * (checked offline for all edges up to 120), so no step is ever diagonal. Measured: 0 on all grids
 * up to 40 x 40 x 40. The exhaustive sweep below covers every grid up to 16 x 16 x 16. */
static void test_hilbert_face_steps_only(void **state) {
    (void)state;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin("hilbert_steps"));
    long diagonal = 0, jumps = 0;
    for (int t = 1; t <= 16; ++t)
        for (int h = 1; h <= 16; ++h)
            for (int w = 1; w <= 16; ++w) {
                hilbert_steps((grid){t, h, w}, &diagonal, &jumps);
                if (diagonal || jumps)
                    ts_fail("hilbert %d x %d x %d: %ld diagonal steps, %ld jumps", t, h, w,
                            diagonal, jumps);
            }
    const grid hard[] = {{17, 17, 17}, {31, 31, 31}, {21, 45, 80}, {9, 33, 33}, {11, 23, 41}};
    for (size_t s = 0; s < FIXED_GRID_COUNT + 5 + 20; ++s) {
        const grid g = s < FIXED_GRID_COUNT       ? fixed_grids[s]
                       : s < FIXED_GRID_COUNT + 5 ? hard[s - FIXED_GRID_COUNT]
                                                  : random_grid(&rng);
        hilbert_steps(g, &diagonal, &jumps);
        if (diagonal || jumps)
            ts_fail("hilbert %d x %d x %d: %ld diagonal steps, %ld jumps", g.t, g.h, g.w, diagonal,
                    jumps);
    }
}

/* Hilbert's defining structure on power-of-two grids: every run of side^3 positions fills one
 * aligned side x side x side cube (side^2 on a single frame), at every scale. */
static void check_aligned_blocks(grid g, int side) {
    int32_t *perm = permutation(CLPSA_ORDER_HILBERT, g, NULL, 0);
    const int block = side * side * (g.t == 1 ? 1 : side);
    for (size_t i = 0; i < video_tokens(g); ++i) {
        int first[3], here[3];
        coords(g, perm[i - i % (size_t)block], first);
        coords(g, perm[i], here);
        for (int k = 0; k < 3; ++k)
            if (first[k] / side != here[k] / side)
                ts_fail("hilbert %d x %d x %d: position %zu is outside the aligned %d-cube of "
                        "its run",
                        g.t, g.h, g.w, i, side);
    }
    free(perm);
}

static void test_hilbert_power_of_two_structure(void **state) {
    (void)state;
    ts_case_begin("hilbert_power_of_two");
    const grid cubes[] = {{8, 8, 8}, {4, 8, 8}, {8, 16, 16}, {16, 16, 16}};
    for (int s = 0; s < 4; ++s)
        for (int side = 2; side <= 4; side *= 2)
            check_aligned_blocks(cubes[s], side);
    for (int side = 2; side <= 8; side *= 2)
        check_aligned_blocks((grid){1, 16, 16}, side);
}

/* Flat grids: a line is the identity, and a plane is the 2-D generalised Hilbert curve,
 * whichever of the three axes is the flat one. */
static void test_hilbert_degenerate_grids(void **state) {
    (void)state;
    ts_case_begin("hilbert_degenerate");
    const int lengths[] = {1, 2, 7, 64, 1000};
    for (int l = 0; l < 5; ++l) {
        const int n = lengths[l];
        const grid lines[3] = {{1, 1, n}, {1, n, 1}, {n, 1, 1}};
        for (int k = 0; k < 3; ++k) {
            int32_t *perm = permutation(CLPSA_ORDER_HILBERT, lines[k], NULL, 0);
            for (int i = 0; i < n; ++i)
                assert_int_equal(perm[i], i);
            free(perm);
        }
    }
    const int planes[][2] = {{2, 2},   {4, 5},   {5, 4},   {3, 3},  {6, 9},
                             {16, 16}, {30, 52}, {31, 45}, {2, 17}, {45, 8}};
    for (size_t p = 0; p < sizeof planes / sizeof planes[0]; ++p) {
        const int u = planes[p][0], v = planes[p][1];
        /* (u, v) laid on (row, column), (frame, column) and (frame, row). */
        const grid g[3] = {{1, u, v}, {u, 1, v}, {u, v, 1}};
        const int axis_u[3] = {1, 0, 0}, axis_v[3] = {2, 2, 1};
        int32_t *perm[3];
        for (int k = 0; k < 3; ++k)
            perm[k] = permutation(CLPSA_ORDER_HILBERT, g[k], NULL, 0);
        for (int i = 0; i < u * v; ++i) {
            int c0[3], ck[3];
            coords(g[0], perm[0][i], c0);
            for (int k = 1; k < 3; ++k) {
                coords(g[k], perm[k][i], ck);
                if (ck[axis_u[k]] != c0[1] || ck[axis_v[k]] != c0[2])
                    ts_fail("%d x %d plane: position %d differs between the flat axes", u, v, i);
            }
        }
        for (int k = 0; k < 3; ++k)
            free(perm[k]);
        long diagonal = 0, jumps = 0;
        hilbert_steps(g[0], &diagonal, &jumps);
        assert_int_equal(diagonal, 0);
        assert_int_equal(jumps, 0);
    }
}

/* Mean over blocks of `block` consecutive positions of their bounding boxes: longest edge,
 * sum of the three edges and volume. */
typedef struct block_boxes {
    double longest, edge_sum, volume;
} block_boxes;

static block_boxes mean_block_boxes(grid g, const int32_t *perm, int block) {
    block_boxes mean = {0, 0, 0};
    const size_t blocks = video_tokens(g) / (size_t)block;
    for (size_t b = 0; b < blocks; ++b) {
        int lo[3] = {g.t, g.h, g.w}, hi[3] = {-1, -1, -1};
        for (int i = 0; i < block; ++i) {
            int c[3];
            coords(g, perm[b * (size_t)block + (size_t)i], c);
            for (int k = 0; k < 3; ++k) {
                lo[k] = c[k] < lo[k] ? c[k] : lo[k];
                hi[k] = c[k] > hi[k] ? c[k] : hi[k];
            }
        }
        double longest = 0, sum = 0, volume = 1;
        for (int k = 0; k < 3; ++k) {
            const double edge = hi[k] - lo[k] + 1;
            longest = edge > longest ? edge : longest;
            sum += edge;
            volume *= edge;
        }
        mean.longest += longest / (double)blocks;
        mean.edge_sum += sum / (double)blocks;
        mean.volume += volume / (double)blocks;
    }
    return mean;
}

/* What PSA needs: a block of 64 tokens is a compact piece of space-time. On 8 x 16 x 16 the
 * raster block is 1 x 4 x 16 (edges 21, longest 16) and Hilbert's 4 x 4 x 4 (12, 4); both
 * have volume 64, so the volume is compared only on the ragged real latent size, where raster
 * blocks straddle rows (measured: 220 vs 75). */
static void test_hilbert_locality(void **state) {
    (void)state;
    ts_case_begin("hilbert_locality");
    const grid grids[2] = {{8, 16, 16}, {16, 30, 52}};
    for (int s = 0; s < 2; ++s) {
        int32_t *raster = permutation(CLPSA_ORDER_RASTER, grids[s], NULL, 0);
        int32_t *hilbert = permutation(CLPSA_ORDER_HILBERT, grids[s], NULL, 0);
        const block_boxes r = mean_block_boxes(grids[s], raster, 64);
        const block_boxes h = mean_block_boxes(grids[s], hilbert, 64);
        print_message("%d x %d x %d, blocks of 64: raster longest %.2f edges %.2f volume %.1f; "
                      "hilbert longest %.2f edges %.2f volume %.1f\n",
                      grids[s].t, grids[s].h, grids[s].w, r.longest, r.edge_sum, r.volume,
                      h.longest, h.edge_sum, h.volume);
        if (!(3.0 * h.longest <= r.longest && 1.5 * h.edge_sum <= r.edge_sum))
            ts_fail("hilbert blocks are not compact enough on %d x %d x %d", grids[s].t, grids[s].h,
                    grids[s].w);
        if (s == 1 && !(2.0 * h.volume <= r.volume))
            ts_fail("hilbert block volume %.1f is not half of raster's %.1f", h.volume, r.volume);
        free(raster);
        free(hilbert);
    }
}

static void check_tiles(grid g, const int *tile, const int32_t *expected) {
    int32_t *perm = permutation(CLPSA_ORDER_TILES, g, tile, 0);
    assert_memory_equal(perm, expected, video_tokens(g) * sizeof *perm);
    free(perm);
}

static void test_tiles_hand_computed(void **state) {
    (void)state;
    ts_case_begin("tiles_hand_computed");
    /* 2 x 3 x 5, tiles 1 x 2 x 2: token = 15 t + 5 y + x; per frame the cubes are rows 0-1
     * then row 2, columns 0-1, 2-3, 4 (ragged). */
    const int tile_a[3] = {1, 2, 2};
    const int32_t expected_a[30] = {0,  1,  5,  6,  2,  3,  7,  8,  4,  9,  10, 11, 12, 13, 14,
                                    15, 16, 20, 21, 17, 18, 22, 23, 19, 24, 25, 26, 27, 28, 29};
    check_tiles((grid){2, 3, 5}, tile_a, expected_a);
    /* 3 x 1 x 4, tiles 2 x 1 x 3: token = 4 t + x; frames 0-1 then frame 2. */
    const int tile_b[3] = {2, 1, 3};
    const int32_t expected_b[12] = {0, 1, 2, 4, 5, 6, 3, 7, 8, 9, 10, 11};
    check_tiles((grid){3, 1, 4}, tile_b, expected_b);
    /* 2 x 4 x 8 with the default 2 x 4 x 4: the left half of both frames, then the right. */
    int32_t expected_c[64];
    for (int i = 0; i < 64; ++i) {
        const int half = i / 32, t = i / 16 % 2, y = i / 4 % 4, x = i % 4 + 4 * half;
        expected_c[i] = (t * 4 + y) * 8 + x;
    }
    check_tiles((grid){2, 4, 8}, NULL, expected_c);
    const int zeros[3] = {0, 0, 0}, explicit_default[3] = {2, 4, 4};
    check_tiles((grid){2, 4, 8}, zeros, expected_c);
    check_tiles((grid){2, 4, 8}, explicit_default, expected_c);
    /* Tiles of one token, or covering the whole grid, leave raster order. */
    int32_t identity[105];
    for (int i = 0; i < 105; ++i)
        identity[i] = i;
    const int unit[3] = {1, 1, 1}, huge[3] = {3, 5, 1000};
    check_tiles((grid){3, 5, 7}, unit, identity);
    check_tiles((grid){3, 5, 7}, huge, identity);
}

static void test_text_tokens_stay_put(void **state) {
    (void)state;
    ts_case_begin("ordering_text_tokens");
    const clpsa_ordering orders[3] = {CLPSA_ORDER_RASTER, CLPSA_ORDER_HILBERT, CLPSA_ORDER_TILES};
    const grid grids[3] = {{3, 5, 7}, {2, 8, 8}, {1, 1, 1}};
    const int texts[3] = {1, 17, 19};
    for (int o = 0; o < 3; ++o)
        for (int s = 0; s < 3; ++s) {
            int32_t *video_only = permutation(orders[o], grids[s], NULL, 0);
            for (int k = 0; k < 3; ++k) {
                int32_t *perm = permutation(orders[o], grids[s], NULL, texts[k]);
                const size_t video = video_tokens(grids[s]);
                assert_memory_equal(perm, video_only, video * sizeof *perm);
                for (int i = 0; i < texts[k]; ++i)
                    assert_int_equal(perm[video + (size_t)i], (int32_t)(video + (size_t)i));
                free(perm);
            }
            free(video_only);
        }
}

/* A failing call returns the status and leaves the output exactly as it was. */
static void expect_rejected(clpsa_status expected, clpsa_ordering o, int t, int h, int w,
                            const int *tile, int text_tokens) {
    int32_t perm[8];
    for (int i = 0; i < 8; ++i)
        perm[i] = CANARY;
    assert_int_equal(clpsa_ordering_permutation(o, t, h, w, tile, text_tokens, perm), expected);
    for (int i = 0; i < 8; ++i)
        assert_int_equal(perm[i], CANARY);
}

static void test_bad_inputs(void **state) {
    (void)state;
    const int good_tile[3] = {1, 2, 2};
    assert_int_equal(clpsa_ordering_permutation(CLPSA_ORDER_HILBERT, 2, 2, 2, NULL, 0, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_ordering_permutation(CLPSA_ORDER_TILES, 2, 2, 2, good_tile, 0, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT);

    const clpsa_status shape = CLPSA_ERROR_INVALID_SHAPE;
    expect_rejected(shape, CLPSA_ORDER_RASTER, 0, 2, 2, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_HILBERT, 2, -1, 2, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_TILES, 2, 2, 0, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_HILBERT, 2, 2, 2, NULL, -1);
    /* Totals past INT32_MAX, including products that would overflow 64 bits. */
    expect_rejected(shape, CLPSA_ORDER_HILBERT, 2048, 2048, 1024, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_RASTER, 65536, 32768, 1, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_TILES, INT32_MAX, INT32_MAX, INT32_MAX, NULL, 0);
    expect_rejected(shape, CLPSA_ORDER_RASTER, 1, 1, INT32_MAX, NULL, 1);
    expect_rejected(shape, CLPSA_ORDER_RASTER, 1, 1, 1, NULL, INT32_MAX);

    const clpsa_status value = CLPSA_ERROR_INVALID_VALUE;
    expect_rejected(value, (clpsa_ordering)0, 2, 2, 2, NULL, 0);
    expect_rejected(value, (clpsa_ordering)4, 2, 2, 2, NULL, 0);
    expect_rejected(value, (clpsa_ordering)-1, 2, 2, 2, NULL, 0);
    const int bad_tiles[4][3] = {{0, 2, 2}, {2, -1, 2}, {2, 2, 0}, {-2, -4, -4}};
    for (int k = 0; k < 4; ++k)
        expect_rejected(value, CLPSA_ORDER_TILES, 2, 2, 2, bad_tiles[k], 0);

    /* The tile is ignored by the other orderings, even a bad one. */
    int32_t perm[8];
    assert_int_equal(
        clpsa_ordering_permutation(CLPSA_ORDER_HILBERT, 2, 2, 2, bad_tiles[1], 0, perm), CLPSA_OK);
    assert_int_equal(clpsa_ordering_permutation(CLPSA_ORDER_RASTER, 2, 2, 2, bad_tiles[1], 0, perm),
                     CLPSA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raster_is_identity),
        cmocka_unit_test(test_bijections_fixed_grids),
        cmocka_unit_test(test_bijections_random_grids),
        cmocka_unit_test(test_hilbert_face_steps_only),
        cmocka_unit_test(test_hilbert_power_of_two_structure),
        cmocka_unit_test(test_hilbert_degenerate_grids),
        cmocka_unit_test(test_hilbert_locality),
        cmocka_unit_test(test_tiles_hand_computed),
        cmocka_unit_test(test_text_tokens_stay_put),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
