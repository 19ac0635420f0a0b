/* footfall door protocol 1.1; see protocol.h and ../PROTOCOL.md. */
#include "protocol.h"

uint32_t ff_crc32(const uint8_t *data, size_t len) {
    /* bitwise CRC-32/ISO-HDLC: no 1 KiB table in a 2 KiB-RAM part */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

size_t ff_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code; code_at = o++; code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                if (i + 1 == len) return o;  /* canonical: no code after a final full block */
                code_at = o++; code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int ff_cobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t i = 0, o = 0;
    if (len == 0) return -1;
    while (i < len) {
        uint8_t code = in[i];
        if (code == 0 || i + code > len) return -1;
        for (size_t k = 1; k < code; k++) {
            if (in[i + k] == 0) return -1;
            out[o++] = in[i + k];
        }
        i += code;
        if (code < 0xFF && i < len) out[o++] = 0;
    }
    return (int)o;
}

static size_t put8(uint8_t *p, size_t at, uint8_t v) { p[at] = v; return at + 1; }
static size_t put16(uint8_t *p, size_t at, uint16_t v) {
    p[at] = (uint8_t)v; p[at + 1] = (uint8_t)(v >> 8); return at + 2;
}
static size_t put32(uint8_t *p, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) p[at + i] = (uint8_t)(v >> (8 * i));
    return at + 4;
}
static size_t put64(uint8_t *p, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) p[at + i] = (uint8_t)(v >> (8 * i));
    return at + 8;
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static size_t head(uint8_t *p, uint8_t type) { p[0] = FF_PROTOCOL_VERSION; p[1] = type; return 2; }

size_t ff_frame(const uint8_t *payload, size_t len, uint8_t *out) {
    uint8_t raw[FF_MAX_PAYLOAD + 4];
    for (size_t i = 0; i < len; i++) raw[i] = payload[i];
    put32(raw, len, ff_crc32(payload, len));
    size_t n = ff_cobs_encode(raw, len + 4, out);
    out[n] = 0;
    return n + 1;
}

size_t ff_enc_hello(uint8_t *p, uint8_t major, uint8_t minor, uint8_t patch, uint32_t epoch,
                    uint16_t ring_capacity, const ff_beam_t *beams, uint8_t n_beams) {
    size_t at = head(p, FF_HELLO);
    at = put8(p, at, major); at = put8(p, at, minor); at = put8(p, at, patch);
    at = put32(p, at, epoch); at = put16(p, at, ring_capacity); at = put8(p, at, n_beams);
    for (uint8_t i = 0; i < n_beams; i++) { at = put8(p, at, beams[i].pair); at = put8(p, at, beams[i].role); }
    return at;
}

static size_t enc_seq_event(uint8_t *p, uint8_t type, uint32_t epoch, uint32_t seq, uint8_t a,
                            uint8_t b, uint64_t t_us) {
    size_t at = head(p, type);
    at = put32(p, at, epoch); at = put32(p, at, seq); at = put8(p, at, a); at = put8(p, at, b);
    return put64(p, at, t_us);
}

size_t ff_enc_beam_event(uint8_t *p, uint32_t epoch, uint32_t seq, uint8_t beam, uint8_t edge,
                         uint64_t t_us) {
    return enc_seq_event(p, FF_BEAM_EVENT, epoch, seq, beam, edge, t_us);
}

size_t ff_enc_rating(uint8_t *p, uint32_t epoch, uint32_t seq, uint8_t keypad, uint8_t level,
                     uint64_t t_us) {
    return enc_seq_event(p, FF_RATING, epoch, seq, keypad, level, t_us);
}

size_t ff_enc_heartbeat(uint8_t *p, uint32_t epoch, uint64_t t_us, uint32_t last_seq,
                        uint32_t acked_seq, uint32_t overflow, uint16_t states,
                        const uint32_t *counters, uint8_t n_beams) {
    size_t at = head(p, FF_HEARTBEAT);
    at = put32(p, at, epoch); at = put64(p, at, t_us); at = put32(p, at, last_seq);
    at = put32(p, at, acked_seq); at = put32(p, at, overflow); at = put16(p, at, states);
    at = put8(p, at, n_beams);
    for (uint8_t i = 0; i < n_beams; i++) at = put32(p, at, counters[i]);
    return at;
}

size_t ff_enc_config_value(uint8_t *p, uint8_t key, uint32_t value, uint8_t status) {
    size_t at = head(p, FF_CONFIG_VALUE);
    at = put8(p, at, key); at = put32(p, at, value); return put8(p, at, status);
}

size_t ff_enc_error(uint8_t *p, uint8_t code, uint32_t detail) {
    size_t at = head(p, FF_ERROR);
    at = put8(p, at, code); return put32(p, at, detail);
}

size_t ff_enc_retained(uint8_t *p, uint32_t epoch, uint32_t oldest_seq) {
    size_t at = head(p, FF_RETAINED);
    at = put32(p, at, epoch); return put32(p, at, oldest_seq);
}

size_t ff_enc_ack(uint8_t *p, uint32_t epoch, uint32_t seq) {
    size_t at = head(p, FF_ACK);
    at = put32(p, at, epoch); return put32(p, at, seq);
}

size_t ff_enc_resume(uint8_t *p, uint32_t epoch, uint32_t from_seq) {
    size_t at = head(p, FF_RESUME);
    at = put32(p, at, epoch); return put32(p, at, from_seq);
}

size_t ff_enc_hello_request(uint8_t *p) { return head(p, FF_HELLO_REQUEST); }

size_t ff_enc_config_get(uint8_t *p, uint8_t key) { return put8(p, head(p, FF_CONFIG_GET), key); }

size_t ff_enc_config_set(uint8_t *p, uint8_t key, uint32_t value) {
    return put32(p, put8(p, head(p, FF_CONFIG_SET), key), value);
}

int ff_decode_host(const uint8_t *frame, size_t len, ff_host_msg_t *msg) {
    uint8_t raw[FF_MAX_FRAME];
    if (len > FF_MAX_FRAME) return -1;
    int n = ff_cobs_decode(frame, len, raw);
    if (n < 4 + 2) return -1;
    size_t plen = (size_t)n - 4;
    if (ff_crc32(raw, plen) != get32(raw + plen)) return -1;
    if (raw[0] != FF_PROTOCOL_VERSION) return -2;
    const uint8_t *b = raw + 2;
    size_t blen = plen - 2;
    msg->type = raw[1];
    switch (raw[1]) {
    case FF_ACK:
    case FF_RESUME:
        if (blen != 8) return -4;
        msg->epoch = get32(b); msg->seq = get32(b + 4);
        return raw[1] == FF_RESUME && msg->seq == 0 ? -5 : 0;
    case FF_HELLO_REQUEST:
        return blen == 0 ? 0 : -4;
    case FF_CONFIG_GET:
        if (blen != 1) return -4;
        msg->key = b[0]; return 0;
    case FF_CONFIG_SET:
        if (blen != 5) return -4;
        msg->key = b[0]; msg->value = get32(b + 1); return 0;
    default:
        return -3;
    }
}
