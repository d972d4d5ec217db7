/*
 * frames.h: build frames by hand, byte by byte as PROTOCOL.md draws them, for the
 * codec tests and the scripted server. Deliberately independent of src/codec.c: a
 * test that built its expected bytes with the code under test would prove nothing.
 */
#ifndef HERALD_TEST_FRAMES_H
#define HERALD_TEST_FRAMES_H

#include <stdint.h>
#include <string.h>

typedef struct frame_bytes {
    uint8_t bytes[90000];
    size_t len;
    size_t frame_start; /* where the frame being built began */
} frame_bytes;

static void fb_u8(frame_bytes *f, unsigned v) {
    f->bytes[f->len++] = (uint8_t)v;
}

static void fb_u16(frame_bytes *f, unsigned v) {
    fb_u8(f, v & 0xFF);
    fb_u8(f, (v >> 8) & 0xFF);
}

static void fb_u32(frame_bytes *f, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        fb_u8(f, (v >> (8 * i)) & 0xFF);
    }
}

static void fb_u64(frame_bytes *f, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        fb_u8(f, (unsigned)((v >> (8 * i)) & 0xFF));
    }
}

static void fb_raw(frame_bytes *f, const void *data, size_t len) {
    memcpy(f->bytes + f->len, data, len);
    f->len += len;
}

static void fb_text(frame_bytes *f, const char *text) {
    fb_raw(f, text, strlen(text));
}

/* Starts a frame of this type; fb_end writes its length field. */
static void fb_begin(frame_bytes *f, unsigned type) {
    f->frame_start = f->len;
    fb_u32(f, 0);
    fb_u8(f, type);
    fb_u8(f, 0);
}

static void fb_end(frame_bytes *f) {
    uint32_t length = (uint32_t)(f->len - f->frame_start - 4);
    for (int i = 0; i < 4; i++) {
        f->bytes[f->frame_start + (size_t)i] = (uint8_t)((length >> (8 * i)) & 0xFF);
    }
}

/* An event in the section 4.1 layout. */
static void fb_event(frame_bytes *f, unsigned severity, const char *topic, const char *source, const char *key,
                     unsigned flags, const void *payload, uint32_t payload_len) {
    fb_u8(f, severity);
    fb_u8(f, (unsigned)strlen(topic));
    fb_u8(f, (unsigned)strlen(source));
    fb_u8(f, (unsigned)strlen(key));
    fb_u16(f, flags);
    fb_u32(f, payload_len);
    fb_text(f, topic);
    fb_text(f, source);
    fb_text(f, key);
    fb_raw(f, payload, payload_len);
}

/* A whole Deliver frame. */
static void fb_deliver(frame_bytes *f, uint64_t seq, uint64_t timestamp_ns, unsigned delivery_flags,
                       unsigned delivery_count, unsigned severity, const char *topic, const char *source,
                       const char *key, unsigned flags, const void *payload, uint32_t payload_len) {
    fb_begin(f, 0x85);
    fb_u64(f, seq);
    fb_u64(f, timestamp_ns);
    fb_u16(f, delivery_flags);
    fb_u16(f, delivery_count);
    fb_event(f, severity, topic, source, key, flags, payload, payload_len);
    fb_end(f);
}

#endif /* HERALD_TEST_FRAMES_H */
