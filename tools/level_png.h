/* SPDX-License-Identifier: Apache-2.0 */
/* A PSA level map as a PNG picture.
 *
 * Layout (all sizes in pixels; tests rebuild it from these rules):
 *   cell   = clamp(256 / max(nq, nk), 2, 16): one square per (query block, key block)
 *   panel  = nk * cell wide, nq * cell tall, one per head, titled "H<h>" above it (text 14 tall
 *            plus 4: 18); a panel slot is max(panel width, title width) wide
 *   panels = min(heads, 8) per row; 8 between slots and between rows; a margin of 8 all round
 *   legend = a fixed 88 x 104 block 16 right of the panels: "LEVEL", then one 14 x 14 swatch
 *            per level (0 SKIP, 1, 2, 4, 8) with its label, rows 14 tall and 4 apart
 *   width  = 8 + panels width + 16 + 88 + 8;   height = 8 + max(panels height, 104) + 8
 * Colours: level 1 darkest to level 8 lightest (viridis), skipped blocks light grey.
 */
#ifndef CLPSA_TOOLS_LEVEL_PNG_H
#define CLPSA_TOOLS_LEVEL_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Writes the picture of levels [heads, nq, nk] (one batch) to `path` atomically (temporary
 * file in the same directory, then rename). Returns 0, or -1 with "<path>: <problem>" in
 * message. */
int clpsa__level_png_write(const char *path, const int8_t *levels, int heads, int nq, int nk,
                           char *message, size_t message_size);

#endif /* CLPSA_TOOLS_LEVEL_PNG_H */
