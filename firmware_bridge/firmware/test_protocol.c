/* Host-side unit test of the firmware's protocol and door logic (built by
 * tests/test_firmware_vectors.py with gcc).
 *   ./test_protocol vectors < lines   encode/decode what the lines ask (see below)
 *   ./test_protocol door              self-checks of debounce, ring, ack, resume, overflow
 * Vector lines: "E <Kind> <int>..." -> prints the frame hex the firmware encodes;
 *               "D <framehex>"      -> prints "type epoch seq key value" as decoded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "door.h"

static void print_frame(const uint8_t *p, size_t n) {
    uint8_t f[FF_MAX_FRAME];
    size_t len = ff_frame(p, n, f);
    for (size_t i = 0; i < len; i++) printf("%02x", f[i]);
    printf("\n");
}

static int vectors(void) {
    char line[2048];
    while (fgets(line, sizeof line, stdin)) {
        char *tok = strtok(line, " \n");
        if (!tok) continue;
        if (strcmp(tok, "D") == 0) {
            char *hex = strtok(NULL, " \n");
            uint8_t f[FF_MAX_FRAME * 2];
            size_t n = strlen(hex) / 2;
            for (size_t i = 0; i < n; i++) sscanf(hex + 2 * i, "%2hhx", &f[i]);
            if (n && f[n - 1] == 0) n--; /* strip the delimiter */
            ff_host_msg_t m = {0};
            int rc = ff_decode_host(f, n, &m);
            if (rc) printf("error %d\n", rc);
            else printf("%u %" PRIu32 " %" PRIu32 " %u %" PRIu32 "\n", m.type, m.epoch, m.seq, m.key, m.value);
            continue;
        }
        char *kind = strtok(NULL, " \n");
        uint64_t v[40] = {0};
        int nv = 0;
        for (char *t; nv < 40 && (t = strtok(NULL, " \n"));) v[nv++] = strtoull(t, NULL, 10);
        uint8_t p[FF_MAX_PAYLOAD];
        size_t n;
        if (!strcmp(kind, "Hello")) {
            ff_beam_t beams[FF_MAX_BEAMS];
            uint8_t nb = (uint8_t)v[5];
            for (int i = 0; i < nb; i++) { beams[i].pair = (uint8_t)v[6 + 2 * i]; beams[i].role = (uint8_t)v[7 + 2 * i]; }
            n = ff_enc_hello(p, v[0], v[1], v[2], v[3], v[4], beams, nb);
        } else if (!strcmp(kind, "BeamEvent")) {
            n = ff_enc_beam_event(p, v[0], v[1], v[2], v[3], v[4]);
        } else if (!strcmp(kind, "Heartbeat")) {
            uint32_t c[FF_MAX_BEAMS];
            uint8_t nb = (uint8_t)v[6];
            for (int i = 0; i < nb; i++) c[i] = (uint32_t)v[7 + i];
            n = ff_enc_heartbeat(p, v[0], v[1], v[2], v[3], v[4], v[5], c, nb);
        } else if (!strcmp(kind, "Rating")) {
            n = ff_enc_rating(p, v[0], v[1], v[2], v[3], v[4]);
        } else if (!strcmp(kind, "ConfigValue")) {
            n = ff_enc_config_value(p, v[0], v[1], v[2]);
        } else if (!strcmp(kind, "Error")) {
            n = ff_enc_error(p, v[0], v[1]);
        } else if (!strcmp(kind, "Retained")) {
            n = ff_enc_retained(p, v[0], v[1]);
        } else if (!strcmp(kind, "Ack")) {
            n = ff_enc_ack(p, v[0], v[1]);
        } else if (!strcmp(kind, "Resume")) {
            n = ff_enc_resume(p, v[0], v[1]);
        } else if (!strcmp(kind, "HelloRequest")) {
            n = ff_enc_hello_request(p);
        } else if (!strcmp(kind, "ConfigGet")) {
            n = ff_enc_config_get(p, v[0]);
        } else if (!strcmp(kind, "ConfigSet")) {
            n = ff_enc_config_set(p, v[0], v[1]);
        } else {
            printf("unknown kind %s\n", kind);
            continue;
        }
        print_frame(p, n);
    }
    return 0;
}

/* ---- door self-checks: a captured output stream parsed back with the C decoder ---- */
typedef struct { uint8_t buf[65536]; size_t len; } sink_t;
static void sink_write(const uint8_t *b, size_t n, void *ctx) {
    sink_t *s = ctx;
    if (s->len + n <= sizeof s->buf) { memcpy(s->buf + s->len, b, n); s->len += n; }
}

/* count frames of one type (BEAM_EVENT or RATING) in the sink; seqs, and for RATING
 * keypad << 8 | level in `extra` */
static int frames_in(sink_t *s, uint8_t type, uint32_t *seqs, uint32_t *extra, int max) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i]) continue;
        uint8_t raw[FF_MAX_FRAME];
        int n = ff_cobs_decode(s->buf + start, i - start, raw);
        if (n > 11 && raw[1] == type && k < max) {
            if (extra) extra[k] = (uint32_t)raw[10] << 8 | raw[11];
            seqs[k++] = raw[6] | raw[7] << 8 | raw[8] << 16 | (uint32_t)raw[9] << 24;
        }
        start = i + 1;
    }
    s->len = 0;
    return k;
}

static int events_in(sink_t *s, uint32_t *seqs, int max) { return frames_in(s, FF_BEAM_EVENT, seqs, 0, max); }


static void host_send(ff_door_t *d, const uint8_t *p, size_t n, uint64_t now) {
    uint8_t f[FF_MAX_FRAME];
    size_t len = ff_frame(p, n, f);
    for (size_t i = 0; i < len; i++) ff_door_rx(d, f[i], now);
}

#define CHECK(c) do { if (!(c)) { printf("FAIL line %d: %s\n", __LINE__, #c); return 1; } } while (0)

static int keypad(void);

static int door(void) {
    static ff_door_t d;
    static sink_t s;
    uint32_t seqs[512];
    uint8_t p[64];
    uint64_t t = 1000;
    ff_door_init(&d, 42, sink_write, &s, t);
    s.len = 0;
    /* a 1 ms glitch is filtered, a real break is stamped at its start */
    ff_door_raw(&d, 0, 1, t); ff_door_poll(&d, t + 1000); ff_door_raw(&d, 0, 0, t + 1000);
    ff_door_poll(&d, t + 10000);
    CHECK(d.last_seq == 0);
    ff_door_raw(&d, 0, 1, 20000); ff_door_poll(&d, 24000);
    CHECK(d.last_seq == 1 && d.ring[1].t_lo == 20000 && d.counters[0] == 1);
    CHECK(events_in(&s, seqs, 512) == 1 && seqs[0] == 1);
    /* 10 more edges, host acks 5, resumes from 6: only 6..11 are re-sent */
    for (int i = 0; i < 10; i++) {
        ff_door_raw(&d, 1, (uint8_t)(i % 2 == 0), 30000 + i * 10000u);
        ff_door_poll(&d, 30000 + i * 10000u + 5000);
    }
    CHECK(d.last_seq == 11 && events_in(&s, seqs, 512) == 10);
    host_send(&d, p, ff_enc_ack(p, 42, 5), 200000);
    CHECK(d.acked_seq == 5);
    host_send(&d, p, ff_enc_resume(p, 42, 6), 200000);
    ff_door_poll(&d, 200001);
    int k = events_in(&s, seqs, 512);
    CHECK(k == 6 && seqs[0] == 6 && seqs[5] == 11);
    /* 1.1: a RESUME below what the board freed (a fresh journal) is answered with
     * RETAINED(epoch, acked + 1), and transmission starts there */
    s.len = 0;
    host_send(&d, p, ff_enc_resume(p, 42, 1), 200001);
    CHECK(d.acked_seq == 5 && d.next_tx == 6);
    CHECK(frames_in(&s, FF_RETAINED, seqs, 0, 512) == 1 && seqs[0] == 6);
    host_send(&d, p, ff_enc_resume(p, 42, 6), 200001);  /* a RESUME at the ring: no RETAINED */
    CHECK(frames_in(&s, FF_RETAINED, seqs, 0, 512) == 0);
    /* an ack from another epoch is refused and answered with HELLO */
    host_send(&d, p, ff_enc_ack(p, 41, 11), 200002);
    CHECK(d.acked_seq == 5 && s.len > 0);
    s.len = 0;
    /* no ack progress for retransmit_ms: everything unacked goes again */
    ff_door_poll(&d, 200002 + 600000);
    k = events_in(&s, seqs, 512);
    CHECK(k == 6 && seqs[0] == 6);
    /* fill the ring: the overflow is counted, nothing already held is overwritten */
    uint64_t tt = 1000000;
    while (d.last_seq - d.acked_seq < FF_RING_CAPACITY) {
        ff_door_raw(&d, 0, (uint8_t)!d.raw[0], tt); ff_door_poll(&d, tt + 5000); tt += 10000;
    }
    ff_door_raw(&d, 0, (uint8_t)!d.raw[0], tt); ff_door_poll(&d, tt + 5000);
    CHECK(d.overflow == 1 && d.last_seq == 5 + FF_RING_CAPACITY);
    /* config */
    s.len = 0;
    host_send(&d, p, ff_enc_config_set(p, 1, 5000), tt);
    CHECK(d.debounce_us == 5000 && s.len > 0);
    /* a reset that kept RAM: the intact struct is recovered, epoch and unacked kept */
    uint32_t last = d.last_seq, acked = d.acked_seq;
    s.len = 0;
    CHECK(ff_door_recover(&d, sink_write, &s, tt + 10000) == 1);
    CHECK(d.epoch == 42 && d.last_seq == last && d.acked_seq == acked && d.next_tx == acked + 1);
    CHECK(s.len > 0 && s.buf[2] == FF_HELLO);  /* COBS: code, version, type */
    ff_door_poll(&d, tt + 20000);
    k = events_in(&s, seqs, 512);
    CHECK(k == FF_WINDOW && seqs[0] == acked + 1);
    /* one flipped bit in an unacked entry: refused, the caller starts a new epoch */
    d.ring[(acked + 1) % FF_RING_CAPACITY].a ^= 1;
    CHECK(ff_door_recover(&d, sink_write, &s, tt + 30000) == 0);
    static ff_door_t blank;  /* power-on garbage (here: zeros) is refused too */
    CHECK(ff_door_recover(&blank, sink_write, &s, 0) == 0);
    if (keypad()) return 1;
    printf("ok\n");
    return 0;
}

/* the keypad: bounces filtered, one RATING per press stamped at its start, releases
 * silent, ratings share the sequence with beam events, config key 5 sets the debounce */
static int keypad(void) {
    static ff_door_t d;
    static sink_t s;
    uint32_t seqs[64], extra[64];
    uint8_t p[64];
    ff_door_init(&d, 9, sink_write, &s, 0);
    s.len = 0;
    /* button 2 (level 3) bounces for 3 ms then holds: one rating at the first contact */
    uint64_t t = 100000;
    for (int i = 0; i < 6; i++) { ff_door_key(&d, 2, (uint8_t)(i % 2 == 0), t + i * 500u); ff_door_poll(&d, t + i * 500u + 1); }
    ff_door_key(&d, 2, 1, t + 3000); ff_door_poll(&d, t + 10000);
    CHECK(d.last_seq == 0);                  /* not yet held for 20 ms */
    ff_door_poll(&d, t + 3000 + 20000);
    CHECK(d.last_seq == 1 && d.ring[1].kind == FF_RATING && d.ring[1].b == 3 && d.ring[1].t_lo == t + 3000);
    /* release (with bounce) and a 5 ms tap on button 0: nothing */
    ff_door_key(&d, 2, 0, 200000); ff_door_poll(&d, 201000); ff_door_key(&d, 2, 1, 201500); ff_door_key(&d, 2, 0, 202000);
    ff_door_poll(&d, 260000);
    ff_door_key(&d, 0, 1, 300000); ff_door_poll(&d, 302000); ff_door_key(&d, 0, 0, 305000); ff_door_poll(&d, 400000);
    CHECK(d.last_seq == 1);
    /* a beam edge between two presses: one sequence for both kinds */
    ff_door_raw(&d, 0, 1, 500000); ff_door_poll(&d, 505000);
    ff_door_key(&d, 3, 1, 600000); ff_door_poll(&d, 630000); ff_door_key(&d, 3, 0, 700000); ff_door_poll(&d, 730000);
    ff_door_key(&d, 3, 1, 800000); ff_door_poll(&d, 830000);
    CHECK(d.last_seq == 4 && d.ring[2].kind == FF_BEAM_EVENT && d.ring[3].b == 4 && d.ring[4].b == 4);
    /* on the wire (with retransmissions: nothing was acked): RATING frames for seqs 1, 3, 4 only */
    int k = frames_in(&s, FF_RATING, seqs, extra, 64), seen1 = 0, seen3 = 0, seen4 = 0;
    for (int i = 0; i < k; i++) {
        CHECK(seqs[i] == 1 || seqs[i] == 3 || seqs[i] == 4);
        CHECK(extra[i] == (uint32_t)(FF_KEYPAD_ID << 8 | (seqs[i] == 1 ? 3 : 4)));
        seen1 |= seqs[i] == 1; seen3 |= seqs[i] == 3; seen4 |= seqs[i] == 4;
    }
    CHECK(seen1 && seen3 && seen4);
    /* key debounce is configurable (key 5) */
    host_send(&d, p, ff_enc_config_set(p, 5, 50000), 900000);
    CHECK(d.key_debounce_us == 50000);
    ff_door_key(&d, 1, 1, 1000000); ff_door_poll(&d, 1030000);
    CHECK(d.last_seq == 4);
    ff_door_poll(&d, 1050000);
    CHECK(d.last_seq == 5 && d.ring[5].b == 2);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "door")) return door();
    return vectors();
}
