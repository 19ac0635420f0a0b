/* footfall door protocol 1.1 (layout version 1; 1.1 added RETAINED): encoder/decoder shared by the firmware and its host-side
 * unit test. No Arduino headers here: it compiles with the host's gcc as well.
 * Layout and semantics: ../PROTOCOL.md. */
#ifndef FOOTFALL_PROTOCOL_H
#define FOOTFALL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define FF_PROTOCOL_VERSION 1
#define FF_PROTOCOL_MINOR 1
#define FF_MAX_BEAMS 16
#define FF_MAX_PAYLOAD 240
#define FF_MAX_FRAME (FF_MAX_PAYLOAD + 4 + 2 + 1)

enum ff_type {
    FF_HELLO = 0x01, FF_BEAM_EVENT = 0x02, FF_HEARTBEAT = 0x03, FF_RATING = 0x04,
    FF_CONFIG_VALUE = 0x05, FF_ERROR = 0x06, FF_RETAINED = 0x07,
    FF_ACK = 0x81, FF_RESUME = 0x82, FF_HELLO_REQUEST = 0x83, FF_CONFIG_GET = 0x84,
    FF_CONFIG_SET = 0x85
};

typedef struct { uint8_t pair, role; } ff_beam_t;

/* A decoded message from the host (ACK, RESUME, HELLO_REQUEST, CONFIG_GET/SET) or,
 * for tests, any message. Only the fields of `type` are meaningful. */
typedef struct {
    uint8_t type;
    uint32_t epoch, seq;   /* ACK: seq; RESUME: seq = from_seq */
    uint8_t key;
    uint32_t value;
} ff_host_msg_t;

uint32_t ff_crc32(const uint8_t *data, size_t len);
size_t ff_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* returns decoded length, or -1 on a malformed block */
int ff_cobs_decode(const uint8_t *in, size_t len, uint8_t *out);

/* Payload -> complete frame (COBS, CRC-32, trailing 0x00) in out[FF_MAX_FRAME]; returns
 * the frame length. */
size_t ff_frame(const uint8_t *payload, size_t len, uint8_t *out);

/* Payload encoders: each writes version, type and fields into p, returns its length. */
size_t ff_enc_hello(uint8_t *p, uint8_t major, uint8_t minor, uint8_t patch, uint32_t epoch,
                    uint16_t ring_capacity, const ff_beam_t *beams, uint8_t n_beams);
size_t ff_enc_beam_event(uint8_t *p, uint32_t epoch, uint32_t seq, uint8_t beam, uint8_t edge,
                         uint64_t t_us);
size_t ff_enc_heartbeat(uint8_t *p, uint32_t epoch, uint64_t t_us, uint32_t last_seq,
                        uint32_t acked_seq, uint32_t overflow, uint16_t states,
                        const uint32_t *counters, uint8_t n_beams);
size_t ff_enc_rating(uint8_t *p, uint32_t epoch, uint32_t seq, uint8_t keypad, uint8_t level,
                     uint64_t t_us);
size_t ff_enc_config_value(uint8_t *p, uint8_t key, uint32_t value, uint8_t status);
size_t ff_enc_error(uint8_t *p, uint8_t code, uint32_t detail);
size_t ff_enc_retained(uint8_t *p, uint32_t epoch, uint32_t oldest_seq);
size_t ff_enc_ack(uint8_t *p, uint32_t epoch, uint32_t seq);
size_t ff_enc_resume(uint8_t *p, uint32_t epoch, uint32_t from_seq);
size_t ff_enc_hello_request(uint8_t *p);
size_t ff_enc_config_get(uint8_t *p, uint8_t key);
size_t ff_enc_config_set(uint8_t *p, uint8_t key, uint32_t value);

/* One frame's bytes (between delimiters) from the host -> message. Returns 0 on success,
 * -1 bad COBS/CRC, -2 wrong version, -3 unknown type, -4 wrong length, -5 field out of
 * range (RESUME from seq 0). */
int ff_decode_host(const uint8_t *frame, size_t len, ff_host_msg_t *msg);

#endif
