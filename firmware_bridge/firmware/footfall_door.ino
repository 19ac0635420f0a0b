// footfall door firmware (Arduino Uno/Nano/Mega class): two IR break-beams on pins 2
// and 3 (external interrupts), a service-rating keypad of FF_N_KEYS push buttons on pins
// 4.. (to GND, internal pull-ups; pin 4 = level 1 "bad" ... the last = best), protocol 1.1
// over the USB serial port at 115200 baud.
// Copy protocol.[ch] and door.[ch] next to this file (Arduino IDE builds them).
// The logic lives in door.c so the host's gcc can unit-test it; this file only wires
// pins, time, EEPROM and the UART to it.
#include <Arduino.h>
#include <EEPROM.h>
extern "C" {
#include "door.h"
}

static const uint8_t BEAM_PINS[FF_N_BEAMS] = {2, 3};  // receiver output LOW = beam broken
static const uint8_t KEY_PINS[5] = {4, 5, 6, 7, 8};     // first FF_N_KEYS used; LOW = pressed
// .noinit: the C runtime does not zero it at boot, so after a reset that keeps RAM
// (watchdog, or the DTR pulse when the host opens the port) the unacked events are
// still there; ff_door_recover checks them by CRC. After a power loss RAM holds noise,
// the check fails and the board starts a new epoch.
static ff_door_t door __attribute__((section(".noinit")));

// 64-bit microseconds since boot: micros() wraps every 71 minutes
static uint64_t micros64() {
  static uint32_t last = 0, high = 0;
  noInterrupts();
  uint32_t now = micros();
  if (now < last) high++;
  last = now;
  uint64_t t = ((uint64_t)high << 32) | now;
  interrupts();
  return t;
}

static void uart_write(const uint8_t *bytes, size_t len, void *) { Serial.write(bytes, len); }

// ISRs only stamp the raw level change; debounce and queuing happen in loop()
static void beam0_isr() { ff_door_raw(&door, 0, digitalRead(BEAM_PINS[0]) == LOW, micros64()); }
static void beam1_isr() { ff_door_raw(&door, 1, digitalRead(BEAM_PINS[1]) == LOW, micros64()); }

// The boot epoch: a counter in EEPROM bytes 0..3, incremented on every boot, so the
// host tells a reset (RAM and its unacked events lost) from a reconnect.
static uint32_t next_epoch() {
  uint32_t e;
  EEPROM.get(0, e);
  if (e == 0xFFFFFFFFu) e = 0;  // erased EEPROM
  e++;
  EEPROM.put(0, e);
  return e;
}

void setup() {
  Serial.begin(115200);
  for (uint8_t i = 0; i < FF_N_BEAMS; i++) pinMode(BEAM_PINS[i], INPUT_PULLUP);
  for (uint8_t k = 0; k < FF_N_KEYS; k++) pinMode(KEY_PINS[k], INPUT_PULLUP);
  if (!ff_door_recover(&door, uart_write, nullptr, micros64()))
    ff_door_init(&door, next_epoch(), uart_write, nullptr, micros64());
  for (uint8_t i = 0; i < FF_N_BEAMS; i++)  // a beam already broken at boot is an edge
    ff_door_raw(&door, i, digitalRead(BEAM_PINS[i]) == LOW, micros64());
  attachInterrupt(digitalPinToInterrupt(BEAM_PINS[0]), beam0_isr, CHANGE);
  attachInterrupt(digitalPinToInterrupt(BEAM_PINS[1]), beam1_isr, CHANGE);
}

void loop() {
  uint64_t now = micros64();
  while (Serial.available() > 0) ff_door_rx(&door, (uint8_t)Serial.read(), now);
  // buttons are polled (loop() runs every few hundred µs; a press lasts 100 ms or more)
  for (uint8_t k = 0; k < FF_N_KEYS; k++) ff_door_key(&door, k, digitalRead(KEY_PINS[k]) == LOW, now);
  noInterrupts();  // ff_door_poll reads what the ISRs write
  ff_door_poll(&door, now);
  interrupts();
}
