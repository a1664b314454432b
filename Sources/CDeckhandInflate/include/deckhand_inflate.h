#ifndef DECKHAND_INFLATE_H
#define DECKHAND_INFLATE_H

#include <stddef.h>
#include <stdint.h>

/// A gzip (RFC 1952) decompressor over zlib, behind an opaque pointer: the
/// zlib types stay out of Swift, where grpc-swift-nio-transport's own zlib
/// module would clash with a second import of zlib.h.
typedef struct deckhand_inflater deckhand_inflater;

/// A new decompressor, or NULL when zlib cannot start one.
deckhand_inflater *deckhand_inflater_new(void);

/// Inflates from `input` into `output`; sets how many bytes of each were
/// used. Returns 0 while the stream goes on, 1 at its end (CRC and length
/// checked), a negative zlib error otherwise.
int deckhand_inflater_run(deckhand_inflater *inflater, const uint8_t *input, size_t input_length,
                          size_t *consumed, uint8_t *output, size_t output_length, size_t *produced);

void deckhand_inflater_free(deckhand_inflater *inflater);

#endif
