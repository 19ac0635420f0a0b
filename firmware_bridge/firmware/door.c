/* See door.h. Go-back-N over a ring: events stay in RAM until the host acks them after
 * its journal commit; a RESUME rewinds transmission to the host's first missing seq, and
 * no ack progress for retransmit_ms rewinds to the oldest unacked event. */
#include "door.h"

static void send_payload(ff_door_t *d, const uint8_t *p, size_t n) {
    uint8_t frame[FF_MAX_FRAME];
    d->write(frame, ff_frame(p, n, frame), d->ctx);
}

static void send_hello(ff_door_t *d) {
    static const ff_beam_t beams[FF_N_BEAMS] = {{0, 0}, {0, 1}};
    uint8_t p[FF_MAX_PAYLOAD];
    send_payload(d, p, ff_enc_hello(p, 1, FF_PROTOCOL_MINOR, 0, d->epoch, FF_RING_CAPACITY, beams, FF_N_BEAMS));
}

static void send_heartbeat(ff_door_t *d, uint64_t now_us) {
    uint8_t p[FF_MAX_PAYLOAD];
    uint16_t states = 0;
    for (uint8_t i = 0; i < FF_N_BEAMS; i++) states |= (uint16_t)(d->stable[i] << i);
    send_payload(d, p, ff_enc_heartbeat(p, d->epoch, now_us, d->last_seq, d->acked_seq,
                                        d->overflow, states, d->counters, FF_N_BEAMS));
}

#define FF_MAGIC 0xF007F411u

/* covers what must survive: epoch, sequences, overflow and the unacked entries only
 * (usually none or two: cheap enough to recompute after every change on an AVR) */
static uint32_t state_check(const ff_door_t *d) {
    uint32_t head[4] = {d->epoch, d->last_seq, d->acked_seq, d->overflow};
    uint32_t c = ff_crc32((const uint8_t *)head, sizeof head);
    for (uint32_t s = d->acked_seq + 1; s <= d->last_seq && s - d->acked_seq <= FF_RING_CAPACITY; s++)
        c = c * 31u + ff_crc32((const uint8_t *)&d->ring[s % FF_RING_CAPACITY], sizeof(ff_entry_t));
    return c;
}

void ff_door_seal(ff_door_t *d) { d->magic = FF_MAGIC; d->check = state_check(d); }

int ff_door_recover(ff_door_t *d, ff_write_fn write, void *ctx, uint64_t now_us) {
    if (d->magic != FF_MAGIC || d->check != state_check(d) || d->acked_seq > d->last_seq ||
        d->last_seq - d->acked_seq > FF_RING_CAPACITY)
        return 0;
    d->next_tx = d->acked_seq + 1;
    d->write = write; d->ctx = ctx;
    d->rx_len = 0; d->rx_overrun = 0;
    for (uint8_t i = 0; i < FF_N_BEAMS; i++) d->raw[i] = d->stable[i];
    for (uint8_t k = 0; k < FF_N_KEYS; k++) d->key_raw[k] = d->key_stable[k];
    d->last_heartbeat_us = d->last_progress_us = now_us;
    send_hello(d);
    return 1;
}

void ff_door_init(ff_door_t *d, uint32_t epoch, ff_write_fn write, void *ctx, uint64_t now_us) {
    uint8_t *z = (uint8_t *)d;
    for (size_t i = 0; i < sizeof *d; i++) z[i] = 0;
    d->epoch = epoch; d->next_tx = 1;
    d->debounce_us = 3000; d->heartbeat_ms = 1000; d->retransmit_ms = 500; d->key_debounce_us = 20000;
    d->write = write; d->ctx = ctx;
    d->last_heartbeat_us = d->last_progress_us = now_us;
    ff_door_seal(d);
    send_hello(d);
}

static int push(ff_door_t *d, uint8_t kind, uint8_t a, uint8_t b, uint64_t t_us) {
    if (d->last_seq - d->acked_seq >= FF_RING_CAPACITY) { d->overflow++; ff_door_seal(d); return 0; }
    ff_entry_t *e = &d->ring[++d->last_seq % FF_RING_CAPACITY];
    e->t_lo = (uint32_t)t_us; e->t_hi = (uint16_t)(t_us >> 32);
    e->kind = kind; e->a = a; e->b = b;
    ff_door_seal(d);
    return 1;
}

void ff_door_raw(ff_door_t *d, uint8_t beam, uint8_t broken, uint64_t now_us) {
    if (beam >= FF_N_BEAMS || d->raw[beam] == broken) return;
    d->raw[beam] = broken;
    d->raw_since[beam] = now_us;
}

int ff_door_rating(ff_door_t *d, uint8_t keypad, uint8_t level, uint64_t now_us) {
    return push(d, FF_RATING, keypad, level, now_us);
}

void ff_door_key(ff_door_t *d, uint8_t key, uint8_t pressed, uint64_t now_us) {
    if (key >= FF_N_KEYS || d->key_raw[key] == pressed) return;
    d->key_raw[key] = pressed;
    d->key_since[key] = now_us;
}

void ff_door_poll(ff_door_t *d, uint64_t now_us) {
    for (uint8_t i = 0; i < FF_N_BEAMS; i++) {
        /* an edge counts once the raw level has held for debounce_us; it is stamped
         * with the time the level changed, not the time it was confirmed */
        if (d->raw[i] != d->stable[i] && now_us - d->raw_since[i] >= d->debounce_us) {
            d->stable[i] = d->raw[i];
            d->counters[i]++;
            push(d, FF_BEAM_EVENT, i, d->stable[i], d->raw_since[i]);
        }
    }
    for (uint8_t k = 0; k < FF_N_KEYS; k++) {
        /* buttons bounce for milliseconds: a level must hold key_debounce_us; repeated
         * presses by one person are all sent (the host flags them, docs/ratings.md) */
        if (d->key_raw[k] != d->key_stable[k] && now_us - d->key_since[k] >= d->key_debounce_us) {
            d->key_stable[k] = d->key_raw[k];
            if (d->key_stable[k]) push(d, FF_RATING, FF_KEYPAD_ID, (uint8_t)(k + 1), d->key_since[k]);
        }
    }
    if (d->acked_seq == d->last_seq) d->last_progress_us = now_us;
    if (now_us - d->last_progress_us >= (uint64_t)d->retransmit_ms * 1000u) {
        d->next_tx = d->acked_seq + 1; /* no ack progress: go back to the oldest unacked */
        d->last_progress_us = now_us;
    }
    while (d->next_tx <= d->last_seq && d->next_tx - d->acked_seq <= FF_WINDOW) {
        const ff_entry_t *e = &d->ring[d->next_tx % FF_RING_CAPACITY];
        uint8_t p[FF_MAX_PAYLOAD];
        uint64_t t = (uint64_t)e->t_hi << 32 | e->t_lo;
        size_t n = e->kind == FF_RATING ? ff_enc_rating(p, d->epoch, d->next_tx, e->a, e->b, t)
                                        : ff_enc_beam_event(p, d->epoch, d->next_tx, e->a, e->b, t);
        send_payload(d, p, n);
        d->next_tx++;
    }
    if (now_us - d->last_heartbeat_us >= (uint64_t)d->heartbeat_ms * 1000u) {
        d->last_heartbeat_us = now_us;
        send_heartbeat(d, now_us);
    }
}

static void on_ack(ff_door_t *d, uint32_t epoch, uint32_t seq, uint64_t now_us) {
    if (epoch != d->epoch) { send_hello(d); return; } /* host talks of another boot */
    if (seq > d->last_seq) seq = d->last_seq;
    if (seq > d->acked_seq) { d->acked_seq = seq; d->last_progress_us = now_us; ff_door_seal(d); }
    if (d->next_tx <= d->acked_seq) d->next_tx = d->acked_seq + 1;
}

static void on_frame(ff_door_t *d, uint64_t now_us) {
    ff_host_msg_t m;
    uint8_t p[FF_MAX_PAYLOAD];
    int rc = ff_decode_host(d->rx, d->rx_len, &m);
    if (rc == -1) return; /* garbage: the host retries what it needs */
    if (rc < 0) {
        send_payload(d, p, ff_enc_error(p, (uint8_t)(rc == -2 ? 3 : rc == -3 ? 2 : 1), (uint32_t)-rc));
        return;
    }
    switch (m.type) {
    case FF_ACK: on_ack(d, m.epoch, m.seq, now_us); break;
    case FF_RESUME:
        on_ack(d, m.epoch, m.seq - 1, now_us);
        if (m.epoch != d->epoch) break;
        d->next_tx = d->acked_seq + 1;
        /* 1.1: the host asks for events this board has freed (another host acknowledged
         * them): say where the ring starts, so the host starts there, not RESUME forever */
        if (m.seq < d->acked_seq + 1)
            send_payload(d, p, ff_enc_retained(p, d->epoch, d->acked_seq + 1));
        break;
    case FF_HELLO_REQUEST: send_hello(d); break;
    case FF_CONFIG_GET:
    case FF_CONFIG_SET: {
        uint32_t *slot = m.key == 1 ? &d->debounce_us : m.key == 2 ? &d->heartbeat_ms
                       : m.key == 3 ? &d->retransmit_ms : m.key == 5 ? &d->key_debounce_us : 0;
        uint8_t status = slot ? 0 : 1;
        if (slot && m.type == FF_CONFIG_SET) {
            if (m.value == 0 || m.value > 60000000u) status = 2; else *slot = m.value;
        }
        send_payload(d, p, ff_enc_config_value(p, m.key, slot ? *slot : 0, status));
        break;
    }
    }
}

void ff_door_rx(ff_door_t *d, uint8_t byte, uint64_t now_us) {
    if (byte == 0) {
        if (d->rx_len && !d->rx_overrun) on_frame(d, now_us);
        d->rx_len = 0; d->rx_overrun = 0;
    } else if (d->rx_len < sizeof d->rx) {
        d->rx[d->rx_len++] = byte;
    } else {
        d->rx_overrun = 1;
    }
}
