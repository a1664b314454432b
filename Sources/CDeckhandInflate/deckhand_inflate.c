#include "deckhand_inflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct deckhand_inflater {
  z_stream stream;
};

deckhand_inflater *deckhand_inflater_new(void) {
  deckhand_inflater *inflater = calloc(1, sizeof(*inflater));
  if (inflater == NULL) return NULL;
  // 15 + 16: a gzip stream only.
  if (inflateInit2(&inflater->stream, 15 + 16) != Z_OK) {
    free(inflater);
    return NULL;
  }
  return inflater;
}

int deckhand_inflater_run(deckhand_inflater *inflater, const uint8_t *input, size_t input_length,
                          size_t *consumed, uint8_t *output, size_t output_length, size_t *produced) {
  z_stream *stream = &inflater->stream;
  stream->next_in = (Bytef *)input;
  stream->avail_in = (uInt)input_length;
  stream->next_out = output;
  stream->avail_out = (uInt)output_length;
  int status = inflate(stream, Z_NO_FLUSH);
  *consumed = input_length - stream->avail_in;
  *produced = output_length - stream->avail_out;
  if (status == Z_STREAM_END) return 1;
  if (status == Z_OK || status == Z_BUF_ERROR) return 0;
  return status < 0 ? status : -100;
}

void deckhand_inflater_free(deckhand_inflater *inflater) {
  if (inflater == NULL) return;
  inflateEnd(&inflater->stream);
  free(inflater);
}
