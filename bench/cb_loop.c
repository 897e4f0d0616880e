// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * cb_loop: call a callback once per record of a ring-buffer-like region, with libbpf's
 * ring_buffer_sample_fn signature (ctx, data, size). Used by bench/decode_micro.py to time
 * the "one ctypes callback per record" consumer without the kernel in the way.
 * Frames: 8-byte header (u32 len, u32 pgoff) + payload padded to 8 bytes, as in the kernel.
 */
#include <stddef.h>
#include <stdint.h>

typedef int (*sample_fn)(void *ctx, void *data, size_t size);

long cb_loop(const uint8_t *buf, size_t bytes, sample_fn fn, void *ctx)
{
	size_t off = 0;
	long n = 0;

	while (off + 8 <= bytes) {
		uint32_t len = *(const uint32_t *)(buf + off) & ~(3u << 30);
		if (fn(ctx, (void *)(buf + off + 8), len) < 0)
			break;
		off += 8 + ((len + 7) & ~7u);
		n++;
	}
	return n;
}
