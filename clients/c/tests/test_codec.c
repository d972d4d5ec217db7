/*
 * test_codec.c: the version 1 codec against PROTOCOL.md: the section 12 transcript
 * byte for byte, every other frame against bytes built by hand from the section 4
 * tables, every section 11 limit refused one past its edge and accepted at it, and
 * malformed server frames refused without reading past them (run under
 * `make check-asan` to make any overread fatal).
 */
#include "check.h"
#include "codec.h"
#include "frames.h"
#include "state.h"

#include <stdlib.h>

static uint8_t out[HERALD_FRAME_BYTES_MAX + 64];

/* The sentinel an encoder must leave in place when it refuses. */
static void poison_out(void) {
    memset(out, 0xA5, sizeof out);
}

static int out_untouched(void) {
    for (size_t i = 0; i < sizeof out; i++) {
        if (out[i] != 0xA5) {
            return 0;
        }
    }
    return 1;
}

/* Decode from an exactly-sized heap copy, so ASan catches a read past the frame. */
static int decode_exact(const uint8_t *frame, size_t len, hc_frame *decoded, hc_why *why) {
    uint8_t *copy = malloc(len == 0 ? 1 : len);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, frame, len);
    int ok = hc_decode(copy, len, decoded, why);
    /* On success the views point into copy: rebase them onto frame before freeing it. */
    if (ok) {
        if (decoded->type == HC_ERROR) {
            decoded->u.error.message = frame + (decoded->u.error.message - copy);
        } else if (decoded->type == HC_STATUS_REPLY) {
            decoded->u.status_reply.json = frame + (decoded->u.status_reply.json - copy);
        } else if (decoded->type == HC_DELIVER) {
            hc_event_view *e = &decoded->u.deliver.event;
            e->topic = frame + (e->topic - copy);
            e->source = frame + (e->source - copy);
            e->key = frame + (e->key - copy);
            e->payload = frame + (e->payload - copy);
        }
    }
    free(copy);
    return ok;
}

static const herald_event *simple_event(void) {
    static herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "fs.vol1.error";
    e.severity = HERALD_SEVERITY_ERR;
    e.payload = "disk full";
    e.payload_len = 9;
    return &e;
}

/* ------------------------------------------------------ section 12 transcript ---- */

static const uint8_t TRANSCRIPT_HELLO[] = {
    0x0f, 0x00, 0x00, 0x00, 0x01, 0x00, 0x48, 0x52, 0x4c, 0x44, 0x01, 0x00, 0x01, 0x00, 0x01, 0x03, 0x66, 0x73, 0x64,
};
static const uint8_t TRANSCRIPT_HELLO_OK[] = {
    0x14, 0x00, 0x00, 0x00, 0x81, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
};
static const uint8_t TRANSCRIPT_PUBLISH[] = {
    0x2a, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x0d,
    0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x66, 0x73, 0x2e, 0x76, 0x6f, 0x6c, 0x31, 0x2e,
    0x65, 0x72, 0x72, 0x6f, 0x72, 0x64, 0x69, 0x73, 0x6b, 0x20, 0x66, 0x75, 0x6c, 0x6c,
};
static const uint8_t TRANSCRIPT_STORED[] = {
    0x1c, 0x00, 0x00, 0x00, 0x82, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
};

static void transcript_hello_encodes_to_the_section_12_bytes(void) {
    hc_why why;
    size_t len = hc_encode_hello(out, sizeof out, 1, 1, HERALD_ROLE_PRODUCER, (const uint8_t *)"fsd", 3, &why);
    CHECK_BYTES(out, len, TRANSCRIPT_HELLO, sizeof TRANSCRIPT_HELLO);
}

static void transcript_hello_ok_decodes_to_its_fields(void) {
    hc_frame f;
    hc_why why;
    CHECK(decode_exact(TRANSCRIPT_HELLO_OK, sizeof TRANSCRIPT_HELLO_OK, &f, &why));
    CHECK_EQ(f.type, HC_HELLO_OK);
    CHECK_EQ(f.u.hello_ok.version, 1);
    CHECK_EQ(f.u.hello_ok.node_id, 7);
    CHECK_EQ(f.u.hello_ok.frame_bytes_max, 81920);
    CHECK_EQ(f.u.hello_ok.event_payload_bytes_max, 65536);
}

static void transcript_publish_encodes_to_the_section_12_bytes(void) {
    hc_why why;
    hc_event_view view;
    CHECK(hc_event_from_api(simple_event(), HERALD_EVENT_PAYLOAD_BYTES_MAX, &view, &why));
    size_t len = hc_encode_publish(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, &view, &why);
    CHECK_BYTES(out, len, TRANSCRIPT_PUBLISH, sizeof TRANSCRIPT_PUBLISH);
}

static void transcript_stored_decodes_to_seq_42(void) {
    hc_frame f;
    hc_why why;
    CHECK(decode_exact(TRANSCRIPT_STORED, sizeof TRANSCRIPT_STORED, &f, &why));
    CHECK_EQ(f.type, HC_STORED);
    CHECK_EQ(f.u.stored.correlation, 1);
    CHECK_EQ(f.u.stored.first_seq, 42);
    CHECK_EQ(f.u.stored.last_seq, 42);
    CHECK_EQ(f.u.stored.count, 1);
}

/* ----------------------------------------------------- client frames, by hand ---- */

static void publish_batch_encodes_events_back_to_back(void) {
    herald_event events[2];
    memset(events, 0, sizeof events);
    events[0].topic = "a.b";
    events[0].severity = 6;
    events[0].source = "src";
    events[0].key = "k1";
    events[0].key_len = 2;
    events[0].flags = 0x1234;
    events[0].payload = "xy";
    events[0].payload_len = 2;
    events[1].topic = "c";
    events[1].severity = 0;
    frame_bytes *want = calloc(1, sizeof *want);
    fb_begin(want, 0x03);
    fb_u64(want, 0x0102030405060708ull);
    fb_u16(want, 2);
    fb_event(want, 6, "a.b", "src", "k1", 0x1234, "xy", 2);
    fb_event(want, 0, "c", "", "", 0, "", 0);
    fb_end(want);
    hc_why why;
    size_t len = hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 0x0102030405060708ull, events, 2,
                                         HERALD_EVENT_PAYLOAD_BYTES_MAX, &why);
    CHECK_BYTES(out, len, want->bytes, want->len);
    free(want);
}

static void subscribe_encodes_every_field_at_its_offset(void) {
    const char *patterns[] = {"fs.*.error", ">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = "audit.v1";
    s.patterns = patterns;
    s.pattern_count = 2;
    s.min_severity = 4;
    s.window_events = 300;
    s.ack_deadline_ms = 1500;
    s.max_deliveries = 9;
    s.automatic_recovery = true;
    s.group = true;
    frame_bytes *want = calloc(1, sizeof *want);
    fb_begin(want, 0x04);
    fb_u32(want, 3);
    fb_u32(want, 300);
    fb_u32(want, 1500);
    fb_u16(want, 9);
    fb_u8(want, 4);
    fb_u8(want, 8);
    fb_u8(want, 2);
    fb_text(want, "audit.v1");
    fb_u8(want, 10);
    fb_text(want, "fs.*.error");
    fb_u8(want, 1);
    fb_text(want, ">");
    fb_end(want);
    hc_why why;
    size_t len = hc_encode_subscribe(out, sizeof out, HERALD_FRAME_BYTES_MAX, &s, &why);
    CHECK_BYTES(out, len, want->bytes, want->len);
    free(want);
}

static void live_only_subscribe_has_an_empty_name(void) {
    const char *patterns[] = {"x"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = NULL;
    s.patterns = patterns;
    s.pattern_count = 1;
    static const uint8_t want[] = {21, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 1, 1, 'x'};
    hc_why why;
    size_t len = hc_encode_subscribe(out, sizeof out, HERALD_FRAME_BYTES_MAX, &s, &why);
    CHECK_BYTES(out, len, want, sizeof want);
}

static void settling_and_empty_frames_encode_to_their_tables(void) {
    hc_why why;
    static const uint8_t confirm[] = {18, 0, 0, 0, 0x05, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0};
    size_t len = hc_encode_confirm(out, sizeof out, 1, 0x0102, &why);
    CHECK_BYTES(out, len, confirm, sizeof confirm);
    static const uint8_t nak[] = {14, 0, 0, 0, 0x06, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xEE, 0x36, 0};
    len = hc_encode_nak(out, sizeof out, 5, 3600000, &why);
    CHECK_BYTES(out, len, nak, sizeof nak);
    static const uint8_t working[] = {10, 0, 0, 0, 0x07, 0, 9, 0, 0, 0, 0, 0, 0, 0};
    len = hc_encode_u64_body(out, sizeof out, HC_WORKING, 9, &why);
    CHECK_BYTES(out, len, working, sizeof working);
    static const uint8_t reject[] = {10, 0, 0, 0, 0x08, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    len = hc_encode_u64_body(out, sizeof out, HC_REJECT, UINT64_MAX, &why);
    CHECK_BYTES(out, len, reject, sizeof reject);
    static const uint8_t ping[] = {10, 0, 0, 0, 0x0B, 0, 0x2A, 0, 0, 0, 0, 0, 0, 0};
    len = hc_encode_u64_body(out, sizeof out, HC_PING, 42, &why);
    CHECK_BYTES(out, len, ping, sizeof ping);
    static const uint8_t recovered[] = {2, 0, 0, 0, 0x09, 0};
    static const uint8_t status[] = {2, 0, 0, 0, 0x0A, 0};
    static const uint8_t goodbye[] = {2, 0, 0, 0, 0x0C, 0};
    len = hc_encode_empty(out, sizeof out, HC_RECOVERED, &why);
    CHECK_BYTES(out, len, recovered, sizeof recovered);
    len = hc_encode_empty(out, sizeof out, HC_STATUS, &why);
    CHECK_BYTES(out, len, status, sizeof status);
    len = hc_encode_empty(out, sizeof out, HC_GOODBYE, &why);
    CHECK_BYTES(out, len, goodbye, sizeof goodbye);
    /* {"op":"dead"} is 13 bytes: length 15. */
    static const uint8_t admin[] = {15, 0, 0, 0, 0x0D, 0, '{', '"', 'o', 'p', '"', ':', '"', 'd', 'e', 'a', 'd', '"', '}'};
    len = hc_encode_admin(out, sizeof out, HERALD_FRAME_BYTES_MAX, (const uint8_t *)"{\"op\":\"dead\"}", 13, &why);
    CHECK_BYTES(out, len, admin, sizeof admin);
}

static void hello_carries_each_role_and_an_empty_name(void) {
    hc_why why;
    for (uint8_t role = 1; role <= 4; role++) {
        size_t len = hc_encode_hello(out, sizeof out, 1, 1, role, NULL, 0, &why);
        uint8_t want[] = {12, 0, 0, 0, 0x01, 0, 0x48, 0x52, 0x4C, 0x44, 1, 0, 1, 0, role, 0};
        CHECK_BYTES(out, len, want, sizeof want);
    }
}

/* ---------------------------------------------------- server frames, by hand ---- */

static void error_decodes_code_correlation_and_message(void) {
    frame_bytes *f = calloc(1, sizeof *f);
    fb_begin(f, 0x83);
    fb_u64(f, 77);
    fb_u16(f, 5);
    fb_u16(f, 9);
    fb_text(f, "log full!");
    fb_end(f);
    hc_frame d;
    hc_why why;
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    CHECK_EQ(d.type, HC_ERROR);
    CHECK_EQ(d.u.error.correlation, 77);
    CHECK_EQ(d.u.error.code, HERALD_SERVER_FULL);
    CHECK_BYTES(d.u.error.message, d.u.error.message_len, "log full!", 9);
    CHECK(!hc_error_code_closes(HERALD_SERVER_FULL));
    for (uint16_t code = 1; code <= 12; code++) {
        CHECK(hc_error_code_closes(code) == (code != 5));
    }
    free(f);
}

static void subscribed_deliver_recovery_done_status_reply_and_pong_decode(void) {
    hc_frame d;
    hc_why why;
    static const uint8_t subscribed[] = {11, 0, 0, 0, 0x84, 0, 1, 3, 0, 0, 0, 0, 0, 0, 1};
    CHECK(decode_exact(subscribed, sizeof subscribed, &d, &why));
    CHECK_EQ(d.u.subscribed.mode, 1);
    CHECK_EQ(d.u.subscribed.pending_events, 0x0100000000000003ull);

    frame_bytes *f = calloc(1, sizeof *f);
    fb_deliver(f, 42, 1700000000123456789ull, 1, 3, 3, "fs.vol1.error", "fsd", "key-1", 0xBEEF, "disk full", 9);
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    CHECK_EQ(d.type, HC_DELIVER);
    CHECK_EQ(d.u.deliver.seq, 42);
    CHECK_EQ(d.u.deliver.timestamp_ns, 1700000000123456789ull);
    CHECK_EQ(d.u.deliver.delivery_flags, 1);
    CHECK_EQ(d.u.deliver.delivery_count, 3);
    CHECK_EQ(d.u.deliver.event.severity, 3);
    CHECK_EQ(d.u.deliver.event.flags, 0xBEEF);
    CHECK_BYTES(d.u.deliver.event.topic, d.u.deliver.event.topic_len, "fs.vol1.error", 13);
    CHECK_BYTES(d.u.deliver.event.source, d.u.deliver.event.source_len, "fsd", 3);
    CHECK_BYTES(d.u.deliver.event.key, d.u.deliver.event.key_len, "key-1", 5);
    CHECK_BYTES(d.u.deliver.event.payload, d.u.deliver.event.payload_len, "disk full", 9);

    static const uint8_t recovery_done[] = {2, 0, 0, 0, 0x86, 0};
    CHECK(decode_exact(recovery_done, sizeof recovery_done, &d, &why));
    CHECK_EQ(d.type, HC_RECOVERY_DONE);

    static const uint8_t status_reply[] = {4, 0, 0, 0, 0x87, 0, '{', '}'};
    CHECK(decode_exact(status_reply, sizeof status_reply, &d, &why));
    CHECK_BYTES(d.u.status_reply.json, d.u.status_reply.json_len, "{}", 2);
    static const uint8_t empty_status_reply[] = {2, 0, 0, 0, 0x87, 0};
    CHECK(decode_exact(empty_status_reply, sizeof empty_status_reply, &d, &why));
    CHECK_EQ(d.u.status_reply.json_len, 0);

    static const uint8_t pong[] = {10, 0, 0, 0, 0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(decode_exact(pong, sizeof pong, &d, &why));
    CHECK_EQ(d.u.pong.token, 0x0807060504030201ull);
    free(f);
}

static void largest_deliver_and_status_reply_decode(void) {
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    char topic[256], source[256], key[65];
    memset(topic, 'a', 255);
    topic[255] = 0;
    memset(source, 's', 255);
    source[255] = 0;
    memset(key, 'k', 64);
    key[64] = 0;
    frame_bytes *f = calloc(1, sizeof *f);
    fb_deliver(f, 1, 2, 0, 65535, 7, topic, source, key, 0, payload, sizeof payload);
    CHECK_EQ(f->len, 6 + 20 + 66120);
    hc_frame d;
    hc_why why;
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    CHECK_EQ(d.u.deliver.event.payload_len, 65536);

    f->len = 0;
    fb_begin(f, 0x87);
    for (size_t i = 0; i < HERALD_STATUS_JSON_BYTES_MAX; i++) {
        fb_u8(f, ' ');
    }
    fb_end(f);
    CHECK_EQ(f->len, HERALD_FRAME_BYTES_MAX);
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    free(f);
}

/* ------------------------------------------------ limits, refused and accepted ---- */

/* An encode that must refuse, write nothing, and say something. */
#define CHECK_REFUSED(encode_call)                                                                        \
    do {                                                                                                  \
        poison_out();                                                                                     \
        hc_why why_;                                                                                      \
        why_.text[0] = 0;                                                                                 \
        size_t len_ = encode_call;                                                                        \
        CHECK_EQ(len_, 0);                                                                                \
        CHECK(out_untouched());                                                                           \
        CHECK(why_.text[0] != 0);                                                                         \
    } while (0)

static size_t publish_of(const herald_event *e, uint32_t payload_max, hc_why *why) {
    hc_event_view view;
    if (!hc_event_from_api(e, payload_max, &view, why)) {
        return 0;
    }
    return hc_encode_publish(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, &view, why);
}

static void event_limits_are_refused_one_past_the_edge(void) {
    static char long_text[300];
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX + 1];
    memset(long_text, 'a', sizeof long_text - 1);
    herald_event e = *simple_event();

    e.severity = 8;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e = *simple_event();
    e.topic = NULL;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    long_text[256] = 0; /* 256 bytes */
    e.topic = long_text;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e = *simple_event();
    e.source = long_text;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e = *simple_event();
    e.source = "\xC3\x28"; /* not UTF-8 */
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e = *simple_event();
    e.key = long_text;
    e.key_len = 65;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e.key = NULL;
    e.key_len = 1;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    e = *simple_event();
    e.payload = payload;
    e.payload_len = HERALD_EVENT_PAYLOAD_BYTES_MAX + 1;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    /* The daemon's own, smaller, payload limit from HelloOk is honoured too. */
    e.payload_len = 1001;
    CHECK_REFUSED(publish_of(&e, 1000, &why_));
    e.payload = NULL;
    e.payload_len = 1;
    CHECK_REFUSED(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    CHECK_REFUSED(publish_of(NULL, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
}

static void event_limits_are_accepted_at_the_edge(void) {
    static char topic[256], source[256], key[64];
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    memset(topic, 'T', 255);
    memset(source, 'S', 255);
    memset(key, 'K', 64);
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = topic;
    e.source = source;
    e.key = key;
    e.key_len = 64;
    e.payload = payload;
    e.payload_len = sizeof payload;
    e.severity = 7;
    e.flags = 0xFFFF;
    hc_why why;
    /* Section 11: the largest event fits Publish and PublishBatch. */
    CHECK_EQ(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why), 6 + 8 + 66120);
    CHECK_EQ(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, &e, 1, HERALD_EVENT_PAYLOAD_BYTES_MAX,
                                     &why),
             6 + 10 + 66120);
    /* An empty source and key and payload are allowed. */
    e = *simple_event();
    e.payload = NULL;
    e.payload_len = 0;
    CHECK(publish_of(&e, HERALD_EVENT_PAYLOAD_BYTES_MAX, &why) > 0);
}

static void batch_limits_are_refused(void) {
    static herald_event events[HERALD_BATCH_EVENTS_MAX + 1];
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    for (size_t i = 0; i < HERALD_BATCH_EVENTS_MAX + 1; i++) {
        events[i] = *simple_event();
    }
    hc_why why;
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 0,
                                          HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 257,
                                          HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, NULL, 1,
                                          HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    CHECK(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 256,
                                  HERALD_EVENT_PAYLOAD_BYTES_MAX, &why) > 0);
    /* One bad event refuses the whole batch (section 10.1), and says which. */
    events[200].topic = "bad..topic";
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 256,
                                          HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    CHECK(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 256,
                                  HERALD_EVENT_PAYLOAD_BYTES_MAX, &why) == 0 &&
          strstr(why.text, "batch event 200") != NULL);
    events[200] = *simple_event();
    /* Two largest payloads exceed a frame: the frame limit binds before 256 does. */
    events[0].payload = payload;
    events[0].payload_len = sizeof payload;
    events[1].payload = payload;
    events[1].payload_len = sizeof payload;
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, HERALD_FRAME_BYTES_MAX, 1, events, 2,
                                          HERALD_EVENT_PAYLOAD_BYTES_MAX, &why_));
    /* The daemon's own frame_bytes_max from HelloOk is honoured. */
    CHECK_REFUSED(hc_encode_publish_batch(out, sizeof out, 100, 1, events + 2, 10, HERALD_EVENT_PAYLOAD_BYTES_MAX,
                                          &why_));
}

static size_t subscribe_of(const herald_subscription *s, hc_why *why) {
    return hc_encode_subscribe(out, sizeof out, HERALD_FRAME_BYTES_MAX, s, why);
}

static void subscription_limits_are_refused_one_past_the_edge(void) {
    static char long_text[300];
    memset(long_text, 'a', sizeof long_text - 1);
    const char *one[] = {">"};
    const char *seventeen[17];
    for (int i = 0; i < 17; i++) {
        seventeen[i] = "a.*";
    }
    herald_subscription base;
    herald_subscription_init(&base);
    base.patterns = one;
    base.pattern_count = 1;
    herald_subscription s = base;

    CHECK_REFUSED(subscribe_of(NULL, &why_));
    s.pattern_count = 0;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.patterns = seventeen;
    s.pattern_count = 17;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.pattern_count = 16;
    hc_why why;
    CHECK(subscribe_of(&s, &why) > 0);
    s = base;
    s.patterns = NULL;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s = base;
    s.window_events = 0;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.window_events = 4097;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.window_events = 4096;
    CHECK(subscribe_of(&s, &why) > 0);
    s = base;
    s.ack_deadline_ms = 3600001;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.ack_deadline_ms = 3600000;
    CHECK(subscribe_of(&s, &why) > 0);
    s = base;
    s.min_severity = 8;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s = base;
    long_text[65] = 0;
    s.name = long_text;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    long_text[64] = 0;
    CHECK(subscribe_of(&s, &why) > 0);
    s.name = "no spaces";
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.name = "a/b";
    CHECK_REFUSED(subscribe_of(&s, &why_));
    s.name = "Ok_name-1.2";
    CHECK(subscribe_of(&s, &why) > 0);
    s = base;
    const char *null_pattern[] = {NULL};
    s.patterns = null_pattern;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    memset(long_text, 'a', 256);
    long_text[256] = 0;
    const char *long_pattern[] = {long_text};
    s.patterns = long_pattern;
    CHECK_REFUSED(subscribe_of(&s, &why_));
    long_text[255] = 0;
    CHECK(subscribe_of(&s, &why) > 0);

    /* A group needs a durable name. */
    s = base;
    s.group = true;
    CHECK(subscribe_of(&s, &why) == 0 && strstr(why.text, "name") != NULL);
    s.name = "jobs";
    CHECK(subscribe_of(&s, &why) > 0);
}

static void the_largest_subscribe_fits_a_frame(void) {
    /* The largest: a 64-byte name and patterns taking the whole 332-byte list (a
       255-byte pattern and a 75-byte one, each with its length byte). One byte more
       is refused. */
    static char name[65], long_pattern[256], rest[80];
    memset(name, 'n', 64);
    memset(long_pattern, 'p', 255);
    memset(rest, 'q', 75);
    const char *patterns[] = {long_pattern, rest};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = name;
    s.patterns = patterns;
    s.pattern_count = 2;
    hc_why why;
    CHECK_EQ(subscribe_of(&s, &why), 6 + 17 + 64 + 332);
    rest[75] = 'q';
    rest[76] = 0;
    CHECK(subscribe_of(&s, &why) == 0 && strstr(why.text, "332") != NULL);
}

static void settling_hello_and_admin_limits_are_refused(void) {
    CHECK_REFUSED(hc_encode_confirm(out, sizeof out, 5, 4, &why_));
    CHECK_REFUSED(hc_encode_nak(out, sizeof out, 1, 3600001, &why_));
    CHECK_REFUSED(hc_encode_admin(out, sizeof out, HERALD_FRAME_BYTES_MAX, (const uint8_t *)"", 0, &why_));
    static uint8_t json[4097];
    memset(json, ' ', sizeof json);
    CHECK_REFUSED(hc_encode_admin(out, sizeof out, HERALD_FRAME_BYTES_MAX, json, 4097, &why_));
    hc_why why;
    CHECK_EQ(hc_encode_admin(out, sizeof out, HERALD_FRAME_BYTES_MAX, json, 4096, &why), 6 + 4096);
    CHECK_REFUSED(hc_encode_admin(out, sizeof out, HERALD_FRAME_BYTES_MAX, (const uint8_t *)"{\"\xFF\"}", 5, &why_));
    static uint8_t name[256];
    memset(name, 'n', sizeof name);
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 1, 1, 1, name, 256, &why_));
    CHECK_EQ(hc_encode_hello(out, sizeof out, 1, 1, 1, name, 255, &why), 6 + 10 + 255);
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 1, 1, 0, name, 1, &why_));
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 1, 1, 5, name, 1, &why_));
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 0, 1, 1, name, 1, &why_));
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 2, 1, 1, name, 1, &why_));
    CHECK_REFUSED(hc_encode_hello(out, sizeof out, 1, 1, 1, (const uint8_t *)"\xED\xA0\x80", 3, &why_));
    CHECK_REFUSED(hc_encode_u64_body(out, sizeof out, HC_CONFIRM, 1, &why_));
    CHECK_REFUSED(hc_encode_empty(out, sizeof out, HC_PING, &why_));
    /* A buffer too small for the frame is refused, not overrun. */
    CHECK_REFUSED(hc_encode_confirm(out, 10, 1, 2, &why_));
}

/* ---------------------------------------------------------------- grammar ---- */

static void topics_follow_the_section_8_grammar(void) {
    const char *valid[] = {"fs", "fs.vol1.error", "A-b_9.x", "a.b.c.d.e.f", "-", "_._"};
    const char *invalid[] = {"", ".", "a.", ".a", "a..b", "a b", "a*", "*", ">", "a.>", "fs.vol\xC3\xA9", "a/b"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        CHECK(herald_topic_is_valid(valid[i]));
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        if (!CHECK(!herald_topic_is_valid(invalid[i]))) {
            fprintf(stderr, "     topic \"%s\" was accepted\n", invalid[i]);
        }
    }
    CHECK(!herald_topic_is_valid(NULL));
}

static void patterns_follow_the_section_8_grammar(void) {
    const char *valid[] = {">", "*", "fs.*.error", "fs.>", "*.>", "a.*.*", "exact.topic", "*.b"};
    const char *invalid[] = {"", "fs*", "a.>.b", ">.a", "a..b", "a.", ".a", "**", ">>", "a.b>", "a b", "*x"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        if (!CHECK(herald_pattern_is_valid(valid[i]))) {
            fprintf(stderr, "     pattern \"%s\" was refused\n", valid[i]);
        }
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        if (!CHECK(!herald_pattern_is_valid(invalid[i]))) {
            fprintf(stderr, "     pattern \"%s\" was accepted\n", invalid[i]);
        }
    }
}

static void utf8_is_checked_strictly(void) {
    hc_why why;
    const char *valid[] = {"", "ascii", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
                           "\xED\x9F\xBF"};
    const char *invalid[] = {"\x80",         "\xC0\x80",     "\xC1\xBF",         "\xE0\x80\x80", "\xED\xA0\x80",
                             "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xC3",     "\xE2\x82",     "\xFF",
                             "\xE2\x28\xA1"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        CHECK(hc_check_utf8((const uint8_t *)valid[i], strlen(valid[i]), "text", &why));
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        CHECK(!hc_check_utf8((const uint8_t *)invalid[i], strlen(invalid[i]), "text", &why));
    }
}

/* --------------------------------------------------- malformed server frames ---- */

/* A frame that must be refused with a reason. */
static void check_refused_frame(const frame_bytes *f, const char *what, int line) {
    hc_frame d;
    hc_why why;
    why.text[0] = 0;
    int ok = decode_exact(f->bytes, f->len, &d, &why);
    char text[200];
    snprintf(text, sizeof text, "malformed frame refused: %s", what);
    check_report(!ok && why.text[0] != 0, __FILE__, line, text);
}
#define CHECK_FRAME_REFUSED(f, what) check_refused_frame(f, what, __LINE__)

static void malformed_headers_are_refused(void) {
    frame_bytes *f = calloc(1, sizeof *f);
    static const uint8_t short_length[] = {1, 0, 0, 0, 0x86};
    hc_frame d;
    hc_why why;
    uint32_t body;
    CHECK(!decode_exact(short_length, sizeof short_length, &d, &why));
    CHECK(!hc_check_length((const uint8_t *)"\x01\x00\x00\x00", &body, &why));
    CHECK(!hc_check_length((const uint8_t *)"\xFD\x3F\x01\x00", &body, &why)); /* 81917 */
    CHECK(hc_check_length((const uint8_t *)"\xFC\x3F\x01\x00", &body, &why));  /* 81916 */
    CHECK_EQ(body, 81914);
    CHECK(!hc_check_length((const uint8_t *)"\xFF\xFF\xFF\xFF", &body, &why));
    CHECK(!hc_check_type(0x86, 1, &why));
    CHECK(!hc_check_type(0x00, 0, &why));
    CHECK(!hc_check_type(0x0E, 0, &why));
    CHECK(!hc_check_type(0x80, 0, &why));
    CHECK(!hc_check_type(0x89, 0, &why));
    CHECK(!hc_check_type(0xFF, 0, &why));
    for (uint8_t t = 0x01; t <= 0x0D; t++) {
        CHECK(!hc_check_type(t, 0, &why)); /* a client frame from the server */
    }
    for (uint8_t t = 0x81; t <= 0x88; t++) {
        CHECK(hc_check_type(t, 0, &why));
    }
    f->len = 0;
    fb_begin(f, 0x86);
    fb_end(f);
    f->bytes[5] = 1;
    CHECK_FRAME_REFUSED(f, "reserved byte 1");
    /* The length field disagrees with the bytes given. */
    f->bytes[5] = 0;
    f->bytes[0] = 3;
    CHECK_FRAME_REFUSED(f, "length says one more byte than present");
    CHECK(!hc_decode(f->bytes, 3, &d, &why));
    free(f);
}

static void malformed_fixed_size_frames_are_refused(void) {
    frame_bytes *f = calloc(1, sizeof *f);
#define STORED(first, last, count)                                                                        \
    do {                                                                                                  \
        f->len = 0;                                                                                       \
        fb_begin(f, 0x82);                                                                                \
        fb_u64(f, 1);                                                                                     \
        fb_u64(f, first);                                                                                 \
        fb_u64(f, last);                                                                                  \
        fb_u16(f, count);                                                                                 \
        fb_end(f);                                                                                        \
    } while (0)
    hc_frame d;
    hc_why why;
    STORED(5, 4, 1);
    CHECK_FRAME_REFUSED(f, "Stored last_seq below first_seq");
    STORED(5, 5, 0);
    CHECK_FRAME_REFUSED(f, "Stored count 0");
    STORED(1, 1000, 257);
    CHECK_FRAME_REFUSED(f, "Stored count 257");
    STORED(10, 11, 3);
    CHECK_FRAME_REFUSED(f, "Stored count above its range");
    STORED(0, UINT64_MAX, 256);
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    STORED(10, 12, 3);
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    f->len--;
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "Stored one byte short");

    f->len = 0;
    fb_begin(f, 0x81);
    fb_u16(f, 1);
    fb_u64(f, 7);
    fb_u32(f, 81920);
    fb_u32(f, 65536);
    fb_u8(f, 0);
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "HelloOk one byte long");
    f->len = 0;
    fb_begin(f, 0x81);
    fb_u16(f, 0);
    fb_u64(f, 7);
    fb_u32(f, 81920);
    fb_u32(f, 65536);
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "HelloOk version 0");

    static const uint8_t subscribed_mode_2[] = {11, 0, 0, 0, 0x84, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!decode_exact(subscribed_mode_2, sizeof subscribed_mode_2, &d, &why));
    static const uint8_t subscribed_short[] = {10, 0, 0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!decode_exact(subscribed_short, sizeof subscribed_short, &d, &why));
    static const uint8_t recovery_done_body[] = {3, 0, 0, 0, 0x86, 0, 0};
    CHECK(!decode_exact(recovery_done_body, sizeof recovery_done_body, &d, &why));
    static const uint8_t pong_short[] = {9, 0, 0, 0, 0x88, 0, 1, 2, 3, 4, 5, 6, 7};
    CHECK(!decode_exact(pong_short, sizeof pong_short, &d, &why));
    static const uint8_t status_not_utf8[] = {4, 0, 0, 0, 0x87, 0, '{', 0xFE};
    CHECK(!decode_exact(status_not_utf8, sizeof status_not_utf8, &d, &why));
#undef STORED
    free(f);
}

static void malformed_errors_are_refused(void) {
    frame_bytes *f = calloc(1, sizeof *f);
#define ERROR_FRAME(code, message_len, message)                                                           \
    do {                                                                                                  \
        f->len = 0;                                                                                       \
        fb_begin(f, 0x83);                                                                                \
        fb_u64(f, 0);                                                                                     \
        fb_u16(f, code);                                                                                  \
        fb_u16(f, message_len);                                                                           \
        fb_text(f, message);                                                                              \
        fb_end(f);                                                                                        \
    } while (0)
    ERROR_FRAME(0, 2, "no");
    CHECK_FRAME_REFUSED(f, "Error code 0");
    ERROR_FRAME(1, 3, "no");
    CHECK_FRAME_REFUSED(f, "Error message_len beyond the body");
    ERROR_FRAME(1, 1, "no");
    CHECK_FRAME_REFUSED(f, "Error message_len short of the body");
    ERROR_FRAME(1, 2, "\xC3\x28");
    CHECK_FRAME_REFUSED(f, "Error message not UTF-8");
    ERROR_FRAME(1, 0xFFFF, "");
    CHECK_FRAME_REFUSED(f, "Error message_len 65535");
    static char long_message[1026];
    memset(long_message, 'm', 1025);
    ERROR_FRAME(1, 1025, long_message);
    CHECK_FRAME_REFUSED(f, "Error message 1025 bytes");
    long_message[1024] = 0;
    ERROR_FRAME(1, 1024, long_message);
    hc_frame d;
    hc_why why;
    CHECK(decode_exact(f->bytes, f->len, &d, &why));
    ERROR_FRAME(200, 0, "");
    CHECK(decode_exact(f->bytes, f->len, &d, &why)); /* an unknown code is kept, and closes */
    CHECK(hc_error_code_closes(200));
    f->len = 0;
    fb_begin(f, 0x83);
    fb_u64(f, 0);
    fb_u16(f, 1);
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "Error shorter than its fixed part");
#undef ERROR_FRAME
    free(f);
}

static void malformed_deliveries_are_refused(void) {
    frame_bytes *f = calloc(1, sizeof *f);
    fb_deliver(f, 1, 2, 2, 1, 3, "a.b", "", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with a reserved delivery flag");
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 0, 3, "a.b", "", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with delivery_count 0");
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 8, "a.b", "", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with severity 8");
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 3, "a..b", "", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with a topic that breaks the grammar");
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 3, "a.*", "", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with a wildcard topic");
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 3, "a.b", "\xFF", "", 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with a source that is not UTF-8");
    static char key[66];
    memset(key, 'k', 65);
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 3, "a.b", "", key, 0, "p", 1);
    CHECK_FRAME_REFUSED(f, "Deliver with a 65-byte key");
    /* Lengths that claim more than the frame holds: refused, never read. */
    f->len = 0;
    fb_deliver(f, 1, 2, 0, 1, 3, "a.b", "", "", 0, "p", 1);
    size_t payload_len_at = 6 + 20 + 6;
    f->bytes[payload_len_at] = 2;
    CHECK_FRAME_REFUSED(f, "Deliver payload_len one past the frame");
    f->bytes[payload_len_at] = 0;
    CHECK_FRAME_REFUSED(f, "Deliver payload_len one short of the frame");
    f->bytes[payload_len_at] = 0xFF;
    f->bytes[payload_len_at + 1] = 0xFF;
    f->bytes[payload_len_at + 2] = 0xFF;
    f->bytes[payload_len_at + 3] = 0xFF;
    CHECK_FRAME_REFUSED(f, "Deliver payload_len 4 GiB");
    f->bytes[payload_len_at] = 1;
    f->bytes[payload_len_at + 1] = 0;
    f->bytes[payload_len_at + 2] = 0;
    f->bytes[payload_len_at + 3] = 0;
    f->bytes[6 + 20 + 1] = 0xFF; /* topic_len */
    CHECK_FRAME_REFUSED(f, "Deliver topic_len 255 past the frame");
    f->bytes[6 + 20 + 1] = 0;
    CHECK_FRAME_REFUSED(f, "Deliver topic_len 0");
    /* Shorter than the fixed parts. */
    f->len = 0;
    fb_begin(f, 0x85);
    fb_u64(f, 1);
    fb_u64(f, 2);
    fb_u16(f, 0);
    fb_u16(f, 1);
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "Deliver with no event");
    fb_u8(f, 3);
    fb_end(f);
    CHECK_FRAME_REFUSED(f, "Deliver with a 1-byte event");
    free(f);
}

/* Every prefix of a valid frame, its length field rewritten to match: an inner length
 * must then disagree, and the decoder must see it (without reading past the end). */
static void every_truncation_of_a_delivery_is_refused(void) {
    frame_bytes *f = calloc(1, sizeof *f);
    fb_deliver(f, 9, 8, 1, 2, 5, "fs.vol1.error", "fsd", "key", 7, "disk full", 9);
    size_t full = f->len;
    int refused = 0;
    for (size_t len = 6; len < full; len++) {
        frame_bytes *t = calloc(1, sizeof *t);
        memcpy(t->bytes, f->bytes, len);
        t->len = len;
        t->frame_start = 0;
        fb_end(t);
        hc_frame d;
        hc_why why;
        refused += !decode_exact(t->bytes, t->len, &d, &why);
        free(t);
    }
    CHECK_EQ(refused, full - 6);
    free(f);
}

/* Random corruption of valid frames: the decoder may accept or refuse, but must never
 * read outside the frame (ASan) and, when it accepts, its views lie inside the frame.
 * The seed is fixed unless HERALD_C_CODEC_SEED (a nonzero decimal or 0x hex number)
 * overrides it, and it is printed at the start and on failure, so a failure can be
 * replayed. */
enum { CODEC_SEED_DEFAULT = 0x5eedC0DE };
static uint64_t rng_state;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int inside(const uint8_t *p, size_t len, const uint8_t *frame, size_t frame_len) {
    return p >= frame && p + len <= frame + frame_len;
}

static void corrupted_frames_never_read_outside_themselves(void) {
    uint64_t seed = CODEC_SEED_DEFAULT;
    const char *from_env = getenv("HERALD_C_CODEC_SEED");
    if (from_env != NULL) {
        char *end = NULL;
        seed = strtoull(from_env, &end, 0);
        if (end == from_env || *end != '\0' || seed == 0) { /* xorshift stays at 0 */
            fprintf(stderr, "HERALD_C_CODEC_SEED=%s is not a nonzero number\n", from_env);
            exit(2);
        }
    }
    printf("corrupted frames: seed 0x%" PRIx64 "; reproduce: HERALD_C_CODEC_SEED=0x%" PRIx64 " make check\n", seed,
           seed);
    rng_state = seed;
    frame_bytes *valid[6];
    for (int i = 0; i < 6; i++) {
        valid[i] = calloc(1, sizeof *valid[i]);
    }
    fb_deliver(valid[0], 42, 1, 1, 2, 3, "fs.vol1.error", "fsd", "key-1", 9, "disk full", 9);
    memcpy(valid[1]->bytes, TRANSCRIPT_STORED, sizeof TRANSCRIPT_STORED);
    valid[1]->len = sizeof TRANSCRIPT_STORED;
    memcpy(valid[2]->bytes, TRANSCRIPT_HELLO_OK, sizeof TRANSCRIPT_HELLO_OK);
    valid[2]->len = sizeof TRANSCRIPT_HELLO_OK;
    fb_begin(valid[3], 0x83);
    fb_u64(valid[3], 3);
    fb_u16(valid[3], 9);
    fb_u16(valid[3], 5);
    fb_text(valid[3], "nope!");
    fb_end(valid[3]);
    fb_begin(valid[4], 0x87);
    fb_text(valid[4], "{\"a\":\"\xC3\xA9\"}");
    fb_end(valid[4]);
    fb_begin(valid[5], 0x84);
    fb_u8(valid[5], 0);
    fb_u64(valid[5], 12);
    fb_end(valid[5]);
    int escaped = 0;
    long accepted = 0, iterations = 200000;
    for (long i = 0; i < iterations; i++) {
        const frame_bytes *v = valid[next_random() % 6];
        size_t len = v->len;
        uint8_t *frame = malloc(len);
        memcpy(frame, v->bytes, len);
        unsigned flips = 1 + (unsigned)(next_random() % 4);
        for (unsigned k = 0; k < flips; k++) {
            frame[next_random() % len] ^= (uint8_t)(1u << (next_random() % 8));
        }
        hc_frame d;
        hc_why why;
        if (hc_decode(frame, len, &d, &why)) {
            accepted++;
            if (d.type == HC_DELIVER) {
                const hc_event_view *e = &d.u.deliver.event;
                escaped += !inside(e->topic, e->topic_len, frame, len) || !inside(e->source, e->source_len, frame, len) ||
                           !inside(e->key, e->key_len, frame, len) || !inside(e->payload, e->payload_len, frame, len);
            } else if (d.type == HC_ERROR) {
                escaped += !inside(d.u.error.message, d.u.error.message_len, frame, len);
            } else if (d.type == HC_STATUS_REPLY) {
                escaped += !inside(d.u.status_reply.json, d.u.status_reply.json_len, frame, len);
            }
        }
        free(frame);
    }
    int stayed_inside = CHECK(escaped == 0);
    int both_outcomes = CHECK(accepted > 0 && accepted < iterations);
    if (!stayed_inside || !both_outcomes) {
        fprintf(stderr, "     failed with seed 0x%" PRIx64 "; reproduce: HERALD_C_CODEC_SEED=0x%" PRIx64 " make check\n",
                seed, seed);
    }
    for (int i = 0; i < 6; i++) {
        free(valid[i]);
    }
}

/* ------------------------------------------------ the tables of PROTOCOL.md ---- */

/* PROTOCOL.md, from $HERALD_PROTOCOL_MD or the repository root (make runs the tests
 * in clients/c). The tables the code copies are read from it and compared cell by
 * cell, so that a change to either side fails here. */
static FILE *open_protocol_md(void) {
    const char *configured = getenv("HERALD_PROTOCOL_MD");
    const char *path = configured != NULL && configured[0] != 0 ? configured : "../../PROTOCOL.md";
    FILE *f = fopen(path, "r");
    if (!CHECK(f != NULL)) {
        fprintf(stderr, "     cannot open %s: run from clients/c or set HERALD_PROTOCOL_MD\n", path);
    }
    return f;
}

enum { CELLS_MAX = 16, CELL_BYTES = 64 };

/* Splits a markdown table row into trimmed cells; returns how many. */
static int table_cells(const char *line, char cells[CELLS_MAX][CELL_BYTES]) {
    if (line[0] != '|') {
        return 0;
    }
    int n = 0;
    const char *p = line + 1;
    while (*p != 0 && *p != '\n' && n < CELLS_MAX) {
        const char *end = strchr(p, '|');
        if (end == NULL) {
            break;
        }
        while (p < end && *p == ' ') {
            p++;
        }
        const char *last = end;
        while (last > p && last[-1] == ' ') {
            last--;
        }
        size_t len = (size_t)(last - p) < CELL_BYTES - 1 ? (size_t)(last - p) : CELL_BYTES - 1;
        memcpy(cells[n], p, len);
        cells[n][len] = 0;
        n++;
        p = end + 1;
    }
    return n;
}

/* Reads lines until one starts with `prefix`; returns false at the end of the file. */
static bool find_line(FILE *f, const char *prefix, char *line, size_t cap) {
    while (fgets(line, (int)cap, f) != NULL) {
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            return true;
        }
    }
    return false;
}

static int action_of_cell(const char *cell) {
    if (strcmp(cell, "close") == 0) return ACTION_CLOSE;
    if (strcmp(cell, "ok") == 0) return ACTION_OK;
    if (strcmp(cell, "see code") == 0) return ACTION_SEE_CODE;
    if (strcmp(cell, "\xE2\x86\x92 Ready") == 0) return ACTION_TO_READY;
    if (strcmp(cell, "\xE2\x86\x92 Subscribed") == 0) return ACTION_TO_SUBSCRIBED;
    return -1;
}

static void client_table_is_the_one_in_protocol_md_section_6(void) {
    FILE *f = open_protocol_md();
    if (f == NULL) {
        return;
    }
    static char line[4096];
    char header[CELLS_MAX][CELL_BYTES], cells[CELLS_MAX][CELL_BYTES];
    if (!CHECK(find_line(f, "| client state |", line, sizeof line))) {
        fclose(f);
        return;
    }
    int columns = table_cells(line, header);
    CHECK_EQ(columns, 9);
    uint8_t types[CELLS_MAX] = {0};
    for (int col = 1; col < columns; col++) {
        for (unsigned t = HC_HELLO_OK; t <= HC_PONG; t++) {
            if (strcmp(header[col], hc_frame_type_name((uint8_t)t)) == 0) {
                types[col] = (uint8_t)t;
            }
        }
        if (!CHECK(types[col] != 0)) {
            fprintf(stderr, "     column \"%s\" is no server frame\n", header[col]);
        }
    }
    int rows = 0, compared = 0;
    CHECK(fgets(line, sizeof line, f) != NULL); /* |---|---| */
    while (fgets(line, sizeof line, f) != NULL && table_cells(line, cells) == columns) {
        int state = -1;
        for (int st = 0; st < STATE_COUNT; st++) {
            if (strcmp(cells[0], hc_client_state_name((client_state)st)) == 0) {
                state = st;
            }
        }
        if (!CHECK(state >= 0)) {
            fprintf(stderr, "     row \"%s\" is no client state\n", cells[0]);
            continue;
        }
        rows++;
        for (int col = 1; col < columns; col++) {
            int want = action_of_cell(cells[col]);
            if (!CHECK(want >= 0 && (int)hc_client_action((client_state)state, types[col]) == want)) {
                fprintf(stderr, "     %s / %s: PROTOCOL.md says \"%s\"\n", cells[0], header[col], cells[col]);
            }
            compared++;
        }
    }
    CHECK_EQ(rows, STATE_COUNT);
    CHECK_EQ(compared, STATE_COUNT * 8);
    fclose(f);
}

static void error_codes_are_the_ones_in_protocol_md_section_7(void) {
    FILE *f = open_protocol_md();
    if (f == NULL) {
        return;
    }
    static char line[4096];
    char cells[CELLS_MAX][CELL_BYTES];
    CHECK(find_line(f, "| code | name | closes |", line, sizeof line));
    CHECK(fgets(line, sizeof line, f) != NULL);
    int codes = 0;
    while (fgets(line, sizeof line, f) != NULL && table_cells(line, cells) >= 3) {
        uint16_t code = (uint16_t)atoi(cells[0]);
        char name[CELL_BYTES];
        size_t len = strlen(cells[1]);
        CHECK(len > 2 && cells[1][0] == '`' && cells[1][len - 1] == '`');
        memcpy(name, cells[1] + 1, len - 2);
        name[len - 2] = 0;
        if (!CHECK(strcmp(herald_server_code_name(code), name) == 0)) {
            fprintf(stderr, "     code %u: PROTOCOL.md names it %s, the code %s\n", code, name,
                    herald_server_code_name(code));
        }
        CHECK(hc_error_code_closes(code) == (strcmp(cells[2], "yes") == 0));
        codes++;
    }
    CHECK_EQ(codes, 13);
    fclose(f);
}

/* The last integer of a cell, its digit groups joined: "0..=3 600 000 ms" is 3600000. */
static long last_number(const char *cell) {
    long value = -1;
    for (const char *p = cell; *p != 0; p++) {
        if (*p >= '0' && *p <= '9') {
            long n = 0;
            while ((*p >= '0' && *p <= '9') || (*p == ' ' && p[1] >= '0' && p[1] <= '9')) {
                if (*p != ' ') {
                    n = n * 10 + (*p - '0');
                }
                p++;
            }
            value = n;
            p--;
        }
    }
    return value;
}

static void limits_are_the_ones_in_protocol_md_section_11(void) {
    FILE *f = open_protocol_md();
    if (f == NULL) {
        return;
    }
    static const struct {
        const char *constant;
        long value;
    } limits[] = {
        {"`FRAME_BYTES_MAX`", HERALD_FRAME_BYTES_MAX},
        {"`FRAME_HEADER_BYTES`", HERALD_FRAME_HEADER_BYTES},
        {"`EVENT_PAYLOAD_BYTES_MAX`", HERALD_EVENT_PAYLOAD_BYTES_MAX},
        {"`TOPIC_BYTES_MAX`", HERALD_TOPIC_BYTES_MAX},
        {"`SOURCE_BYTES_MAX`", HERALD_SOURCE_BYTES_MAX},
        {"`CLIENT_NAME_BYTES_MAX`", HERALD_CLIENT_NAME_BYTES_MAX},
        {"`KEY_BYTES_MAX`", HERALD_KEY_BYTES_MAX},
        {"`BATCH_EVENTS_MAX`", HERALD_BATCH_EVENTS_MAX},
        {"`SUBSCRIPTION_NAME_BYTES_MAX`", HERALD_SUBSCRIPTION_NAME_BYTES_MAX},
        {"`SUBSCRIPTION_PATTERNS_MAX`", HERALD_SUBSCRIPTION_PATTERNS_MAX},
        {"`PATTERN_BYTES_MAX`", HERALD_PATTERN_BYTES_MAX},
        {"`SUBSCRIPTION_PATTERN_LIST_BYTES_MAX`", HERALD_SUBSCRIPTION_PATTERN_LIST_BYTES_MAX},
        {"`WINDOW_EVENTS_MAX`", HERALD_WINDOW_EVENTS_MAX},
        {"`NAK_DELAY_MS_MAX`", HERALD_NAK_DELAY_MS_MAX},
        {"`ACK_DEADLINE_MS_MAX`", HERALD_ACK_DEADLINE_MS_MAX},
        {"`ERROR_MESSAGE_BYTES_MAX`", HERALD_ERROR_MESSAGE_BYTES_MAX},
        {"`STATUS_JSON_BYTES_MAX`", HERALD_STATUS_JSON_BYTES_MAX},
        {"`ADMIN_REQUEST_BYTES_MAX`", HERALD_ADMIN_REQUEST_BYTES_MAX},
    };
    size_t count = sizeof limits / sizeof *limits;
    static char line[4096];
    char cells[CELLS_MAX][CELL_BYTES];
    CHECK(find_line(f, "| limit | value | constant |", line, sizeof line));
    CHECK(fgets(line, sizeof line, f) != NULL);
    size_t found = 0;
    while (fgets(line, sizeof line, f) != NULL && table_cells(line, cells) == 3) {
        size_t i = 0;
        while (i < count && strcmp(limits[i].constant, cells[2]) != 0) {
            i++;
        }
        if (!CHECK(i < count)) {
            fprintf(stderr, "     PROTOCOL.md has a limit %s that herald.h does not\n", cells[2]);
            continue;
        }
        found++;
        if (!CHECK(last_number(cells[1]) == limits[i].value)) {
            fprintf(stderr, "     %s: PROTOCOL.md says \"%s\", herald.h %ld\n", cells[2], cells[1], limits[i].value);
        }
    }
    CHECK_EQ(found, count);
    fclose(f);
}

/* ------------------------------------------------------------------ names ---- */

static void every_status_and_server_code_has_its_own_name(void) {
    const int statuses[] = {HERALD_OK,         HERALD_E_ARGUMENT, HERALD_E_FULL,  HERALD_E_TIMEOUT,
                            HERALD_E_SERVER,   HERALD_E_PROTOCOL, HERALD_E_CLOSED, HERALD_E_IO,
                            HERALD_E_STATE,    HERALD_E_OVERFLOW, HERALD_E_NOMEM, HERALD_E_FORBIDDEN};
    size_t n = sizeof statuses / sizeof *statuses;
    for (size_t i = 0; i < n; i++) {
        CHECK(strcmp(herald_status_name(statuses[i]), "HERALD_E_UNKNOWN") != 0);
        for (size_t j = 0; j < i; j++) {
            CHECK(strcmp(herald_status_name(statuses[i]), herald_status_name(statuses[j])) != 0);
        }
    }
    CHECK(strcmp(herald_status_name(-99), "HERALD_E_UNKNOWN") == 0);
    CHECK(strcmp(herald_status_name(HERALD_E_FULL), "HERALD_E_FULL") == 0);
    const char *codes[] = {"invalid",     "unexpected",    "unsupported_version", "too_large",
                           "full",        "name_in_use",   "shutting_down",       "internal",
                           "not_permitted", "busy",        "table_full",          "timed_out",
                           "forbidden"};
    for (uint16_t code = 1; code <= 13; code++) {
        CHECK(strcmp(herald_server_code_name(code), codes[code - 1]) == 0);
    }
    CHECK(strcmp(herald_server_code_name(0), "unknown") == 0);
    CHECK(strcmp(herald_server_code_name(14), "unknown") == 0);
}

int main(void) {
    RUN(transcript_hello_encodes_to_the_section_12_bytes);
    RUN(transcript_hello_ok_decodes_to_its_fields);
    RUN(transcript_publish_encodes_to_the_section_12_bytes);
    RUN(transcript_stored_decodes_to_seq_42);
    RUN(publish_batch_encodes_events_back_to_back);
    RUN(subscribe_encodes_every_field_at_its_offset);
    RUN(live_only_subscribe_has_an_empty_name);
    RUN(settling_and_empty_frames_encode_to_their_tables);
    RUN(hello_carries_each_role_and_an_empty_name);
    RUN(error_decodes_code_correlation_and_message);
    RUN(subscribed_deliver_recovery_done_status_reply_and_pong_decode);
    RUN(largest_deliver_and_status_reply_decode);
    RUN(event_limits_are_refused_one_past_the_edge);
    RUN(event_limits_are_accepted_at_the_edge);
    RUN(batch_limits_are_refused);
    RUN(subscription_limits_are_refused_one_past_the_edge);
    RUN(the_largest_subscribe_fits_a_frame);
    RUN(settling_hello_and_admin_limits_are_refused);
    RUN(topics_follow_the_section_8_grammar);
    RUN(patterns_follow_the_section_8_grammar);
    RUN(utf8_is_checked_strictly);
    RUN(malformed_headers_are_refused);
    RUN(malformed_fixed_size_frames_are_refused);
    RUN(malformed_errors_are_refused);
    RUN(malformed_deliveries_are_refused);
    RUN(every_truncation_of_a_delivery_is_refused);
    RUN(corrupted_frames_never_read_outside_themselves);
    RUN(every_status_and_server_code_has_its_own_name);
    RUN(client_table_is_the_one_in_protocol_md_section_6);
    RUN(error_codes_are_the_ones_in_protocol_md_section_7);
    RUN(limits_are_the_ones_in_protocol_md_section_11);
    return finish("test_codec");
}
