/* Fuzz target: frame decode followed by the payload parser of whatever type it carries, over a
 * stream of frames (as a connection's receive buffer would hold them). */
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        proto_frame_t f;
        size_t used = 0;
        int rc = proto_frame_decode(data + pos, size - pos, 1u << 20, &f, &used);
        if (rc != 0) {
            break;
        }
        if (used < PROTO_HEADER_SIZE || used > size - pos) {
            __builtin_trap();
        }
        pos += used;
        switch (f.type) {
        case PROTO_HELLO: {
            proto_hello_t h;
            const char *bad = NULL;
            if (proto_hello_parse(&f, &h) == 0) {
                (void)proto_hello_validate(&h, &bad);
            }
            break;
        }
        case PROTO_WELCOME: {
            proto_welcome_t w;
            (void)proto_welcome_parse(&f, &w);
            break;
        }
        case PROTO_CREDIT: {
            uint32_t c;
            (void)proto_credit_parse(&f, &c);
            break;
        }
        case PROTO_BATCH: {
            proto_batch_t b;
            if (proto_batch_parse(&f, 49408, &b) == 0) {
                /* Touch every view to let ASan check the bounds. */
                volatile uint32_t acc = 0;
                for (uint32_t i = 0; i <= b.n; i++) {
                    acc += proto_batch_offset(&b, i);
                }
                for (uint32_t j = 0; j < b.nnz; j++) {
                    acc += proto_batch_label(&b, j);
                }
                if (b.keys != NULL && b.n > 0) {
                    acc += (uint32_t)proto_batch_key(&b, b.n - 1);
                }
                if (b.n > 0) {
                    acc += b.images[(size_t)b.n * b.h * b.w * 3 - 1];
                }
                (void)acc;
            }
            break;
        }
        case PROTO_ERROR: {
            proto_error_t e;
            (void)proto_error_parse(&f, &e);
            break;
        }
        case PROTO_BYE: {
            int32_t r;
            (void)proto_bye_parse(&f, &r);
            break;
        }
        default: {
            uint64_t t;
            (void)proto_ping_parse(&f, &t);
            break;
        }
        }
    }
    return 0;
}
