/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny built-in 5 x 7 bitmap font for the labels of the tool's pictures: only the glyphs they
 * need (digits, a few capitals, space), so no font library is required. */
#ifndef CLPSA_TOOLS_BITMAP_FONT_H
#define CLPSA_TOOLS_BITMAP_FONT_H

#include <stdint.h>

#define CLPSA__FONT_WIDTH 5
#define CLPSA__FONT_HEIGHT 7
#define CLPSA__FONT_ADVANCE 6 /* glyph plus one column of spacing */

/* Width in pixels of `text` drawn at `scale` (each font pixel a scale x scale square). */
int clpsa__font_text_width(const char *text, int scale);

/* Draws `text` into an RGB image (3 bytes per pixel, rows of `width` pixels) with its top-left
 * corner at (x, y); pixels outside the image are clipped. A character without a glyph is drawn
 * as a filled box so a missing glyph is visible rather than silently blank. */
void clpsa__font_draw(uint8_t *rgb, int width, int height, int x, int y, const char *text,
                      int scale, const uint8_t color[3]);

#endif /* CLPSA_TOOLS_BITMAP_FONT_H */
