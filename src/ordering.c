/* SPDX-License-Identifier: Apache-2.0 */
/* Token orderings of a video grid (issue 4): PSA pools and scores contiguous blocks of the
 * sequence, so a block only summarises something coherent when its tokens are neighbours in
 * space and time. Each ordering is a permutation perm[position] = raster index. */
#include <clpsa/clpsa.h>

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

/* A point or an axis-aligned edge vector of a cuboid, indexed frame, row, column. */
typedef struct vec3 {
    int c[3];
} vec3;

static vec3 vec_add(vec3 a, vec3 b) {
    return (vec3){{a.c[0] + b.c[0], a.c[1] + b.c[1], a.c[2] + b.c[2]}};
}

static vec3 vec_sub(vec3 a, vec3 b) {
    return (vec3){{a.c[0] - b.c[0], a.c[1] - b.c[1], a.c[2] - b.c[2]}};
}

static vec3 vec_neg(vec3 a) {
    return (vec3){{-a.c[0], -a.c[1], -a.c[2]}};
}

static int sign(int v) {
    return (v > 0) - (v < 0);
}

static vec3 vec_unit(vec3 a) {
    return (vec3){{sign(a.c[0]), sign(a.c[1]), sign(a.c[2])}};
}

/* Edge vectors have one non-zero component, so this is their length in cells. */
static int vec_len(vec3 a) {
    const int s = a.c[0] + a.c[1] + a.c[2];
    return s < 0 ? -s : s;
}

/* The edge a, shortened to n cells (same axis, same direction). */
static vec3 vec_resize(vec3 a, int n) {
    const vec3 u = vec_unit(a);
    return (vec3){{u.c[0] * n, u.c[1] * n, u.c[2] * n}};
}

typedef struct curve_writer {
    int32_t *perm;
    int64_t next;
    int height, width;
} curve_writer;

static void emit(curve_writer *wr, vec3 p) {
    wr->perm[wr->next++] = (int32_t)(((int64_t)p.c[0] * wr->height + p.c[1]) * wr->width + p.c[2]);
}

static void walk(curve_writer *wr, vec3 p, vec3 a) {
    const vec3 u = vec_unit(a);
    for (int i = vec_len(a); i > 0; --i) {
        emit(wr, p);
        p = vec_add(p, u);
    }
}

/* Cut points of an edge of n >= 2 cells near its middle, each leaving both parts non-empty.
 * Parity is what decides whether a part can be traversed without a diagonal step (see
 * box_is_good), so both parities are offered, even first: an even major edge is the one that
 * always works. Returns how many of the two exist (n = 2 has no even cut). */
static int cut_options(int n, int cuts[2]) {
    int count = 0;
    for (int parity = 0; parity < 2; ++parity) {
        int x = n / 2;
        if (x % 2 != parity)
            x = x + 1 <= n - 1 ? x + 1 : x - 1;
        if (x >= 1 && x <= n - 1)
            cuts[count++] = x;
    }
    return count;
}

/* The usual generalised-Hilbert cut: the middle, moved by one to make it even when possible. */
static int middle_cut(int n) {
    int cuts[2];
    cut_options(n, cuts);
    return cuts[0];
}

/* Every curve here starts at its origin and ends next to the origin along the major edge a
 * (at origin + a - unit(a)), which is what lets the parts of a cuboid chain into one curve.
 * Colour cells by the parity of t + y + x: a face step changes colour, so a curve of N cells
 * with that end exists only if the major edge is even (N even) or every edge is odd (N odd).
 * A box is "good" when it meets this; a 1-cell major edge can only end where it started. */
static bool box_is_good(int major, int minor1, int minor2) {
    if (major == 1)
        return minor1 == 1 && minor2 == 1;
    return major % 2 == 0 || (minor1 % 2 == 1 && minor2 % 2 == 1);
}

/* 2-D generalised Hilbert curve of the rectangle a x b at p: halve a long rectangle along a,
 * else split it in three (lower half of b, then the rest, then back). With middle_cut every
 * good rectangle splits into good parts, so its curve has face steps only; a bad one (odd
 * major, even minor) ends with a single diagonal step. */
static void curve_2d(curve_writer *wr, vec3 p, vec3 a, vec3 b) {
    const int w = vec_len(a), h = vec_len(b);
    if (h == 1) {
        walk(wr, p, a);
        return;
    }
    if (w == 1) {
        walk(wr, p, b);
        return;
    }
    if (2 * (int64_t)w > 3 * (int64_t)h) {
        const vec3 a2 = vec_resize(a, middle_cut(w));
        curve_2d(wr, p, a2, b);
        curve_2d(wr, vec_add(p, a2), vec_sub(a, a2), b);
        return;
    }
    const vec3 da = vec_unit(a), db = vec_unit(b);
    const vec3 a2 = vec_resize(a, w / 2), b2 = vec_resize(b, middle_cut(h));
    curve_2d(wr, p, b2, a2);
    curve_2d(wr, vec_add(p, b2), a, vec_sub(b, b2));
    curve_2d(wr, vec_add(vec_add(p, vec_sub(a, da)), vec_sub(b2, db)), vec_neg(b2),
             vec_neg(vec_sub(a, a2)));
}

/* How a cuboid with edges a (w cells), b (h), c (d) is cut into parts that chain up:
 * SPLIT_A: two halves along a; SPLIT_B / SPLIT_C: three parts, halving b (c) and a, the
 * other minor edge kept whole; SPLIT_ABC: five parts, halving every edge. */
typedef enum split_kind { SPLIT_A, SPLIT_B, SPLIT_C, SPLIT_ABC } split_kind;

typedef struct split {
    split_kind kind;
    int a2, b2, c2; /* cut points; unused ones are 0 */
} split;

/* Counts the parts of s that cannot be traversed without a diagonal step. The part edges
 * (major first) mirror the recursive calls in curve_3d. */
static int bad_parts(int w, int h, int d, split s) {
    int parts[5][3];
    int n = 0;
#define PART(x, y, z) (parts[n][0] = (x), parts[n][1] = (y), parts[n][2] = (z), ++n)
    switch (s.kind) {
    case SPLIT_A:
        PART(s.a2, h, d);
        PART(w - s.a2, h, d);
        break;
    case SPLIT_B:
        PART(s.b2, d, s.a2);
        PART(w, h - s.b2, d);
        PART(s.b2, d, w - s.a2);
        break;
    case SPLIT_C:
        PART(s.c2, s.a2, h);
        PART(w, h, d - s.c2);
        PART(s.c2, w - s.a2, h);
        break;
    case SPLIT_ABC:
        PART(s.b2, s.c2, s.a2);
        PART(d, s.a2, h - s.b2);
        PART(w, s.b2, d - s.c2);
        PART(d, w - s.a2, h - s.b2);
        PART(s.b2, s.c2, w - s.a2);
        break;
    }
#undef PART
    int bad = 0;
    for (int i = 0; i < n; ++i)
        bad += !box_is_good(parts[i][0], parts[i][1], parts[i][2]);
    return bad;
}

/* Picks the split of a w x h x d box (every edge >= 2). The shape rule of the generalised
 * Hilbert curve comes first (halve a when it is long, keep a short minor edge whole, else cut
 * all three) with even middle cuts. Where that leaves a part that needs a diagonal step (odd
 * edges: e.g. five-way cuts of an all-odd box always do), the other cut parities and then the
 * other kinds are tried, three-part ones first since they keep the parts closest to cubes. A
 * good box always has a split into good parts (checked over all shapes by the tests), so the
 * curve of a good grid has no diagonal step at all. */
static split choose_split(int w, int h, int d) {
    split_kind preferred = SPLIT_ABC;
    if (2 * (int64_t)w > 3 * (int64_t)h && 2 * (int64_t)w > 3 * (int64_t)d)
        preferred = SPLIT_A;
    else if (3 * (int64_t)h > 4 * (int64_t)d)
        preferred = SPLIT_B;
    else if (3 * (int64_t)d > 4 * (int64_t)h)
        preferred = SPLIT_C;
    const split_kind order[5] = {preferred, SPLIT_B, SPLIT_C, SPLIT_A, SPLIT_ABC};
    int cuts_a[2], cuts_b[2], cuts_c[2];
    const int na = cut_options(w, cuts_a);
    const int nb = cut_options(h, cuts_b);
    const int nc = cut_options(d, cuts_c);
    split best = {preferred, 0, 0, 0};
    int best_bad = 6;
    for (int k = 0; k < 5; ++k) {
        const split_kind kind = order[k];
        if (k > 0 && kind == preferred)
            continue;
        /* Unused edges take a single dummy cut so the loops below run once for them. */
        const bool uses_b = kind == SPLIT_B || kind == SPLIT_ABC;
        const bool uses_c = kind == SPLIT_C || kind == SPLIT_ABC;
        for (int ib = 0; ib < (uses_b ? nb : 1); ++ib)
            for (int ic = 0; ic < (uses_c ? nc : 1); ++ic)
                for (int ia = 0; ia < na; ++ia) {
                    const split s = {kind, cuts_a[ia], uses_b ? cuts_b[ib] : 0,
                                     uses_c ? cuts_c[ic] : 0};
                    const int bad = bad_parts(w, h, d, s);
                    if (bad < best_bad) {
                        best = s;
                        best_bad = bad;
                        if (bad == 0)
                            return best;
                    }
                }
    }
    return best;
}

/* 3-D generalised Hilbert curve of the cuboid with edges a, b, c at p (see the start and end
 * rule above box_is_good). Flat cuboids are exactly the 2-D curve, lines a walk. */
static void curve_3d(curve_writer *wr, vec3 p, vec3 a, vec3 b, vec3 c) {
    const int w = vec_len(a), h = vec_len(b), d = vec_len(c);
    if (d == 1) {
        curve_2d(wr, p, a, b);
        return;
    }
    if (h == 1) {
        curve_2d(wr, p, a, c);
        return;
    }
    if (w == 1) {
        /* Not reached from a good box; the end rule cannot hold here, so cover it anyway. */
        if (h >= d)
            curve_2d(wr, p, b, c);
        else
            curve_2d(wr, p, c, b);
        return;
    }
    const split s = choose_split(w, h, d);
    const vec3 da = vec_unit(a), db = vec_unit(b), dc = vec_unit(c);
    const vec3 a2 = vec_resize(a, s.a2);
    const vec3 a_end = vec_add(p, vec_sub(a, da)); /* the far cell along a: where we end */
    switch (s.kind) {
    case SPLIT_A:
        curve_3d(wr, p, a2, b, c);
        curve_3d(wr, vec_add(p, a2), vec_sub(a, a2), b, c);
        return;
    case SPLIT_B: {
        const vec3 b2 = vec_resize(b, s.b2);
        curve_3d(wr, p, b2, c, a2);
        curve_3d(wr, vec_add(p, b2), a, vec_sub(b, b2), c);
        curve_3d(wr, vec_add(a_end, vec_sub(b2, db)), vec_neg(b2), c, vec_neg(vec_sub(a, a2)));
        return;
    }
    case SPLIT_C: {
        const vec3 c2 = vec_resize(c, s.c2);
        curve_3d(wr, p, c2, a2, b);
        curve_3d(wr, vec_add(p, c2), a, b, vec_sub(c, c2));
        curve_3d(wr, vec_add(a_end, vec_sub(c2, dc)), vec_neg(c2), vec_neg(vec_sub(a, a2)), b);
        return;
    }
    case SPLIT_ABC: {
        const vec3 b2 = vec_resize(b, s.b2), c2 = vec_resize(c, s.c2);
        const vec3 c_top = vec_sub(c, dc);
        curve_3d(wr, p, b2, c2, a2);
        curve_3d(wr, vec_add(p, b2), c, a2, vec_sub(b, b2));
        curve_3d(wr, vec_add(vec_add(p, vec_sub(b2, db)), c_top), a, vec_neg(b2),
                 vec_neg(vec_sub(c, c2)));
        curve_3d(wr, vec_add(vec_add(a_end, b2), c_top), vec_neg(c), vec_neg(vec_sub(a, a2)),
                 vec_sub(b, b2));
        curve_3d(wr, vec_add(a_end, vec_sub(b2, db)), vec_neg(b2), c2, vec_neg(vec_sub(a, a2)));
        return;
    }
    }
}

static void hilbert_permutation(int frames, int height, int width, int32_t *perm) {
    const int size[3] = {frames, height, width};
    /* Longest edge first (ties in frame, row, column order), as the curve prefers to run along
     * it. When that edge is odd and the cell count even, the whole grid would be a bad box, so
     * the longest even edge leads instead: the curve then needs no diagonal step. */
    int axes[3] = {0, 1, 2};
    for (int i = 1; i < 3; ++i)
        for (int j = i; j > 0 && size[axes[j]] > size[axes[j - 1]]; --j) {
            const int t = axes[j];
            axes[j] = axes[j - 1];
            axes[j - 1] = t;
        }
    if (!box_is_good(size[axes[0]], size[axes[1]], size[axes[2]])) {
        const int lead = size[axes[1]] % 2 == 0 ? 1 : 2;
        const int t = axes[lead];
        for (int j = lead; j > 0; --j)
            axes[j] = axes[j - 1];
        axes[0] = t;
    }
    vec3 edge[3];
    for (int i = 0; i < 3; ++i) {
        edge[i] = (vec3){{0, 0, 0}};
        edge[i].c[axes[i]] = size[axes[i]];
    }
    curve_writer wr = {perm, 0, height, width};
    curve_3d(&wr, (vec3){{0, 0, 0}}, edge[0], edge[1], edge[2]);
    assert(wr.next == (int64_t)frames * height * width);
}

static void tiles_permutation(int frames, int height, int width, const int tile[3], int32_t *perm) {
    int64_t next = 0;
    for (int64_t t0 = 0; t0 < frames; t0 += tile[0])
        for (int64_t y0 = 0; y0 < height; y0 += tile[1])
            for (int64_t x0 = 0; x0 < width; x0 += tile[2]) {
                const int64_t t1 = t0 + tile[0] < frames ? t0 + tile[0] : frames;
                const int64_t y1 = y0 + tile[1] < height ? y0 + tile[1] : height;
                const int64_t x1 = x0 + tile[2] < width ? x0 + tile[2] : width;
                for (int64_t t = t0; t < t1; ++t)
                    for (int64_t y = y0; y < y1; ++y)
                        for (int64_t x = x0; x < x1; ++x)
                            perm[next++] = (int32_t)((t * height + y) * width + x);
            }
    assert(next == (int64_t)frames * height * width);
}

clpsa_status clpsa_ordering_permutation(clpsa_ordering ordering, int frames, int height, int width,
                                        const int *tile, int text_tokens, int32_t *perm) {
    if (!perm)
        return CLPSA_ERROR_NULL_ARGUMENT;
    if (frames < 1 || height < 1 || width < 1 || text_tokens < 0)
        return CLPSA_ERROR_INVALID_SHAPE;
    /* Positions and raster indices are int32 (the kernels read them as int). Checked one
     * factor at a time so the products themselves cannot overflow int64. */
    int64_t video = (int64_t)frames * height;
    if (video > INT32_MAX)
        return CLPSA_ERROR_INVALID_SHAPE;
    video *= width;
    if (video > INT32_MAX - (int64_t)text_tokens)
        return CLPSA_ERROR_INVALID_SHAPE;

    /* Everything is validated before perm is written, so a failed call leaves it untouched. */
    int tiles[3] = {2, 4, 4}; /* clpsa_plan_desc's default */
    switch (ordering) {
    case CLPSA_ORDER_RASTER:
    case CLPSA_ORDER_HILBERT:
        break;
    case CLPSA_ORDER_TILES:
        /* As in clpsa_plan_desc: all zero means the default; otherwise every size counts. */
        if (tile && (tile[0] || tile[1] || tile[2])) {
            for (int i = 0; i < 3; ++i) {
                if (tile[i] < 1)
                    return CLPSA_ERROR_INVALID_VALUE;
                tiles[i] = tile[i];
            }
        }
        break;
    default:
        return CLPSA_ERROR_INVALID_VALUE;
    }

    if (ordering == CLPSA_ORDER_HILBERT)
        hilbert_permutation(frames, height, width, perm);
    else if (ordering == CLPSA_ORDER_TILES)
        tiles_permutation(frames, height, width, tiles, perm);
    else
        for (int64_t i = 0; i < video; ++i)
            perm[i] = (int32_t)i;
    for (int64_t i = video; i < video + text_tokens; ++i)
        perm[i] = (int32_t)i;
    return CLPSA_OK;
}
