/* The door firmware's logic without hardware: debounce, ring of unacked events,
 * acks/resume, heartbeats, retransmission. The .ino supplies pins, time and the UART;
 * the host's gcc builds this file for the unit test. */
#ifndef FOOTFALL_DOOR_H
#define FOOTFALL_DOOR_H

#include "protocol.h"

#ifndef FF_RING_CAPACITY
#define FF_RING_CAPACITY 96 /* 96 x 10 B: fits an ATmega328's 2 KiB with room to spare */
#endif
#define FF_N_BEAMS 2
#ifndef FF_N_KEYS
#define FF_N_KEYS 4 /* service-rating keypad buttons, 1 = worst .. FF_N_KEYS = best (3 or 4) */
#endif
#ifndef FF_KEYPAD_ID
#define FF_KEYPAD_ID 0
#endif
#ifndef FF_WINDOW
#define FF_WINDOW 16 /* frames in flight beyond the last ack */
#endif

typedef void (*ff_write_fn)(const uint8_t *bytes, size_t len, void *ctx);

typedef struct {
    uint32_t t_lo;   /* microseconds since boot, low and high words */
    uint16_t t_hi;
    uint8_t kind;    /* FF_BEAM_EVENT or FF_RATING */
    uint8_t a, b;    /* beam, edge | keypad, level */
} ff_entry_t;

typedef struct {
    uint32_t magic, check;  /* validity of this struct across a reset that keeps RAM */
    uint32_t epoch;
    uint32_t last_seq;      /* highest seq put in the ring */
    uint32_t acked_seq;     /* highest seq the host committed */
    uint32_t next_tx;       /* next seq to transmit */
    uint32_t overflow;
    ff_entry_t ring[FF_RING_CAPACITY]; /* seq s lives at ring[s % FF_RING_CAPACITY] */
    /* debounce */
    uint8_t raw[FF_N_BEAMS], stable[FF_N_BEAMS];
    uint64_t raw_since[FF_N_BEAMS];
    uint32_t counters[FF_N_BEAMS];
    /* keypad: same debounce scheme, a press (released -> held) is one RATING */
    uint8_t key_raw[FF_N_KEYS], key_stable[FF_N_KEYS];
    uint64_t key_since[FF_N_KEYS];
    /* config */
    uint32_t debounce_us, heartbeat_ms, retransmit_ms, key_debounce_us;
    uint64_t last_heartbeat_us, last_progress_us;
    /* receive */
    uint8_t rx[FF_MAX_FRAME];
    size_t rx_len;
    int rx_overrun;
    ff_write_fn write;
    void *ctx;
} ff_door_t;

void ff_door_init(ff_door_t *d, uint32_t epoch, ff_write_fn write, void *ctx, uint64_t now_us);
/* After a reset that kept RAM (watchdog, or the DTR pulse of a port being opened) with
 * the struct in a .noinit section: if it is intact, keep the epoch and every unacked
 * event, rewind transmission, say HELLO, return 1 (the host sees no reset and loses
 * nothing). Otherwise return 0: call ff_door_init with a new epoch. Call
 * ff_door_seal after every change so the check stays valid. */
int ff_door_recover(ff_door_t *d, ff_write_fn write, void *ctx, uint64_t now_us);
void ff_door_seal(ff_door_t *d);
/* From the pin-change interrupt: the raw level of a beam changed (1 = broken). */
void ff_door_raw(ff_door_t *d, uint8_t beam, uint8_t broken, uint64_t now_us);
/* From loop(): debounced edges into the ring, transmission, heartbeat, retransmit. */
void ff_door_poll(ff_door_t *d, uint64_t now_us);
void ff_door_rx(ff_door_t *d, uint8_t byte, uint64_t now_us);
/* Queue a keypad rating directly; returns 0 if the ring was full. */
int ff_door_rating(ff_door_t *d, uint8_t keypad, uint8_t level, uint64_t now_us);
/* From loop() or a pin-change interrupt: the raw level of keypad button `key` (0-based,
 * 1 = pressed). ff_door_poll turns a press held for key_debounce_us into a RATING of
 * level key + 1, stamped when the press began; releases and bounces send nothing. */
void ff_door_key(ff_door_t *d, uint8_t key, uint8_t pressed, uint64_t now_us);

#endif
