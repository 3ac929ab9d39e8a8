/* SPDX-License-Identifier: Apache-2.0 */
/* The level-map picture of level_png.h, drawn into an RGB buffer and written with libpng's
 * simplified API (which reports errors by return value, so no setjmp here). */
#include "level_png.h"

#include "bitmap_font.h"

#include <png.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARGIN 8
#define GAP 8
#define TEXT_SCALE 2
#define TEXT_HEIGHT (CLPSA__FONT_HEIGHT * TEXT_SCALE)
#define TITLE_HEIGHT (TEXT_HEIGHT + 4)
#define MAX_COLUMNS 8
#define SWATCH TEXT_HEIGHT
#define LEGEND_ROW_GAP 4
#define LEGEND_LABEL_GAP 4
#define LEGEND_ROWS 6
#define LEGEND_HEIGHT (LEGEND_ROWS * SWATCH + (LEGEND_ROWS - 1) * LEGEND_ROW_GAP)
#define LEGEND_OFFSET (2 * GAP)

static const uint8_t background[3] = {255, 255, 255};
static const uint8_t ink[3] = {32, 32, 32};

/* Index by level slot (0, 1, 2, 4, 8). Viridis steps: the finer the level (the more of the
 * block's detail kept), the darker, so the budget's spend reads at a glance; skip is a grey
 * that stays distinct from the white background. */
static const uint8_t level_colors[5][3] = {
    {222, 222, 222}, /* 0: skipped */
    {68, 1, 84},     /* 1: full resolution */
    {49, 104, 142},  /* 2 */
    {53, 183, 121},  /* 4 */
    {253, 231, 37},  /* 8 */
};
static const char *const level_labels[5] = {"0 SKIP", "1", "2", "4", "8"};

static int slot_of(int level) {
    switch (level) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return 2;
    case 4:
        return 3;
    case 8:
        return 4;
    }
    return -1;
}

static void fill(uint8_t *rgb, int width, int x, int y, int w, int h, const uint8_t color[3]) {
    for (int py = y; py < y + h; ++py)
        for (int px = x; px < x + w; ++px)
            memcpy(rgb + ((size_t)py * width + px) * 3, color, 3);
}

static int legend_width(void) {
    return SWATCH + LEGEND_LABEL_GAP + clpsa__font_text_width(level_labels[0], TEXT_SCALE);
}

static void draw_legend(uint8_t *rgb, int width, int height, int x, int y) {
    clpsa__font_draw(rgb, width, height, x, y, "LEVEL", TEXT_SCALE, ink);
    for (int s = 0; s < 5; ++s) {
        const int row_y = y + (s + 1) * (SWATCH + LEGEND_ROW_GAP);
        fill(rgb, width, x, row_y, SWATCH, SWATCH, level_colors[s]);
        clpsa__font_draw(rgb, width, height, x + SWATCH + LEGEND_LABEL_GAP, row_y, level_labels[s],
                         TEXT_SCALE, ink);
    }
}

/* Writes the image through a temporary file so a reader never sees half a PNG. The temporary
 * is created with mode 0666 (not mkstemp's 0600), so the umask decides the picture's
 * permissions as it does for every other output; O_EXCL keeps it ours alone. */
static int write_atomically(const char *path, const uint8_t *rgb, int width, int height,
                            char *message, size_t message_size) {
    char temp[4096];
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        if (snprintf(temp, sizeof temp, "%s.tmp.%ld.%d", path, (long)getpid(), attempt) >=
            (int)sizeof temp) {
            snprintf(message, message_size, "%s: path too long", path);
            return -1;
        }
        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        snprintf(message, message_size, "%s: cannot create a temporary file: %s", path,
                 strerror(errno));
        return -1;
    }
    FILE *file = fdopen(fd, "wb");
    if (!file) {
        snprintf(message, message_size, "%s: %s", path, strerror(errno));
        close(fd);
        remove(temp);
        return -1;
    }
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = PNG_FORMAT_RGB;
    const int written = png_image_write_to_stdio(&image, file, 0, rgb, 0, NULL);
    const int flushed = fflush(file) == 0 && fsync(fileno(file)) == 0;
    const int saved_errno = errno;
    const int closed = fclose(file) == 0;
    if (!written) {
        snprintf(message, message_size, "%s: libpng: %s", path, image.message);
    } else if (!flushed || !closed) {
        snprintf(message, message_size, "%s: writing failed: %s", path, strerror(saved_errno));
    } else if (rename(temp, path) != 0) {
        snprintf(message, message_size, "%s: cannot rename %s into place: %s", path, temp,
                 strerror(errno));
    } else {
        return 0;
    }
    remove(temp);
    return -1;
}

int clpsa__level_png_write(const char *path, const int8_t *levels, int heads, int nq, int nk,
                           char *message, size_t message_size) {
    if (heads < 1 || nq < 1 || nk < 1) {
        snprintf(message, message_size, "%s: empty level map (%d heads, %d x %d blocks)", path,
                 heads, nq, nk);
        return -1;
    }
    const int longest = nq > nk ? nq : nk;
    int cell = 256 / longest;
    cell = cell < 2 ? 2 : cell > 16 ? 16 : cell;
    char title[32];
    snprintf(title, sizeof title, "H%d", heads - 1);
    const int title_width = clpsa__font_text_width(title, TEXT_SCALE);
    const int panel_w = nk * cell, panel_h = nq * cell;
    const int slot_w = panel_w > title_width ? panel_w : title_width;
    const int columns = heads < MAX_COLUMNS ? heads : MAX_COLUMNS;
    const int rows = (heads + columns - 1) / columns;
    const long long panels_w = (long long)columns * slot_w + (long long)(columns - 1) * GAP;
    const long long panels_h =
        (long long)rows * (TITLE_HEIGHT + panel_h) + (long long)(rows - 1) * GAP;
    const long long width = MARGIN + panels_w + LEGEND_OFFSET + legend_width() + MARGIN;
    const long long height =
        MARGIN + (panels_h > LEGEND_HEIGHT ? panels_h : LEGEND_HEIGHT) + MARGIN;
    /* PNG allows 2^31 - 1 per side; keep well below so the buffer stays sane. */
    if (width > 32767 || height > 32767) {
        snprintf(message, message_size,
                 "%s: a picture of %lld x %lld pixels would be too large (%d heads of %d x %d "
                 "blocks)",
                 path, width, height, heads, nq, nk);
        return -1;
    }
    uint8_t *rgb = malloc((size_t)width * (size_t)height * 3);
    if (!rgb) {
        snprintf(message, message_size, "%s: out of memory for %lld x %lld pixels", path, width,
                 height);
        return -1;
    }
    fill(rgb, (int)width, 0, 0, (int)width, (int)height, background);
    for (int h = 0; h < heads; ++h) {
        const int x = MARGIN + (h % columns) * (slot_w + GAP);
        const int y = MARGIN + (h / columns) * (TITLE_HEIGHT + panel_h + GAP);
        snprintf(title, sizeof title, "H%d", h);
        clpsa__font_draw(rgb, (int)width, (int)height, x, y, title, TEXT_SCALE, ink);
        const int8_t *map = levels + (size_t)h * nq * nk;
        for (int i = 0; i < nq; ++i)
            for (int j = 0; j < nk; ++j) {
                const int s = slot_of(map[(size_t)i * nk + j]);
                /* Values were checked before; an impossible one still shows, in the ink. */
                fill(rgb, (int)width, x + j * cell, y + TITLE_HEIGHT + i * cell, cell, cell,
                     s >= 0 ? level_colors[s] : ink);
            }
    }
    draw_legend(rgb, (int)width, (int)height, (int)(MARGIN + panels_w + LEGEND_OFFSET), MARGIN);
    const int rc = write_atomically(path, rgb, (int)width, (int)height, message, message_size);
    free(rgb);
    return rc;
}
