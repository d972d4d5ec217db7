/*
 * codec.c: encoders and decoders of the version 1 frames (see codec.h).
 *
 * Every encoder validates all of its input before it writes a byte; every decoder
 * checks each length against the bytes actually present before it reads what the
 * length covers, so a frame from the server can never make it read out of bounds.
 */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__GNUC__)
#define HC_PRINTF(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define HC_PRINTF(format_index, first_arg)
#endif

static const uint8_t HELLO_MAGIC[4] = {0x48, 0x52, 0x4C, 0x44}; /* "HRLD" */

/* ------------------------------------------------------------ little-endian ---- */

uint16_t hc_load_u16(const uint8_t *p) {
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

uint32_t hc_load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t hc_load_u64(const uint8_t *p) {
    return (uint64_t)hc_load_u32(p) | ((uint64_t)hc_load_u32(p + 4) << 32);
}

void hc_store_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void hc_store_u32(uint8_t *p, uint32_t v) {
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
    }
}

void hc_store_u64(uint8_t *p, uint64_t v) {
    for (unsigned i = 0; i < 8; i++) {
        p[i] = (uint8_t)((v >> (8 * i)) & 0xFFu);
    }
}

/* ------------------------------------------------------------------- why ---- */

static HC_PRINTF(2, 3) void why_set(hc_why *why, const char *format, ...) {
    va_list args;
    va_start(args, format);
    (void)vsnprintf(why->text, sizeof why->text, format, args);
    va_end(args);
}

/* Text quoted for a message: printable ASCII as is, anything else as \xNN, cut to a
 * readable length. dst has room for at least 64 bytes. */
enum { QUOTE_BYTES = 64, QUOTE_SHOWN_MAX = 40 };
static const char *quote(char dst[QUOTE_BYTES], const uint8_t *text, size_t len) {
    size_t out = 0;
    dst[out++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (i == QUOTE_SHOWN_MAX) {
            memcpy(dst + out, "...", 3);
            out += 3;
            break;
        }
        uint8_t c = text[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            dst[out++] = (char)c;
        } else {
            /* Escapes take 4 bytes; stop before they could overflow. */
            if (out + 4 + 5 >= QUOTE_BYTES) {
                memcpy(dst + out, "...", 3);
                out += 3;
                break;
            }
            (void)snprintf(dst + out, QUOTE_BYTES - out, "\\x%02x", c);
            out += 4;
        }
    }
    dst[out++] = '"';
    dst[out] = '\0';
    return dst;
}

/* ------------------------------------------------------------------ text ---- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
bool hc_check_utf8(const uint8_t *text, size_t len, const char *what, hc_why *why) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = text[i];
        size_t continuation = 0;
        uint8_t second_min = 0x80, second_max = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            continuation = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            continuation = 2;
            if (b == 0xE0) {
                second_min = 0xA0; /* overlong */
            } else if (b == 0xED) {
                second_max = 0x9F; /* surrogates */
            }
        } else if (b >= 0xF0 && b <= 0xF4) {
            continuation = 3;
            if (b == 0xF0) {
                second_min = 0x90; /* overlong */
            } else if (b == 0xF4) {
                second_max = 0x8F; /* above U+10FFFF */
            }
        } else {
            why_set(why, "%s is not UTF-8: byte %zu is 0x%02x, which no UTF-8 sequence starts with", what, i, b);
            return false;
        }
        if (len - i <= continuation) {
            why_set(why, "%s is not UTF-8: the sequence at byte %zu is cut off by the end of the text", what, i);
            return false;
        }
        for (size_t k = 1; k <= continuation; k++) {
            uint8_t c = text[i + k];
            uint8_t low = k == 1 ? second_min : 0x80;
            uint8_t high = k == 1 ? second_max : 0xBF;
            if (c < low || c > high) {
                why_set(why, "%s is not UTF-8: byte %zu (0x%02x) is not a valid continuation of the sequence at byte %zu",
                        what, i + k, c, i);
                return false;
            }
        }
        i += continuation + 1;
    }
    return true;
}

static bool is_segment_byte(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Checks dot-separated segments of [A-Za-z0-9_-]; when wildcards is true a segment may
 * also be "*", and the last segment may be ">" (section 8). */
static bool check_segments(const uint8_t *text, size_t len, bool wildcards, const char *what, hc_why *why) {
    char shown[QUOTE_BYTES];
    if (len == 0) {
        why_set(why, "%s is empty; it needs 1..=255 bytes", what);
        return false;
    }
    if (len > HERALD_TOPIC_BYTES_MAX) {
        why_set(why, "%s is %zu bytes; at most 255 are allowed", what, len);
        return false;
    }
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != '.') {
            end++;
        }
        size_t segment_len = end - start;
        const uint8_t *segment = text + start;
        bool last = end == len;
        if (segment_len == 0) {
            why_set(why, "%s %s has an empty segment at byte %zu; segments are separated by single dots", what,
                    quote(shown, text, len), start);
            return false;
        }
        if (wildcards && segment_len == 1 && (segment[0] == '*' || segment[0] == '>')) {
            if (segment[0] == '>' && !last) {
                why_set(why, "%s %s has '>' at byte %zu before its end; '>' may only be the last segment", what,
                        quote(shown, text, len), start);
                return false;
            }
        } else {
            for (size_t i = 0; i < segment_len; i++) {
                if (!is_segment_byte(segment[i])) {
                    if (wildcards && (segment[i] == '*' || segment[i] == '>')) {
                        why_set(why,
                                "%s %s has '%c' inside a segment at byte %zu; a wildcard must be a whole segment",
                                what, quote(shown, text, len), segment[i], start + i);
                    } else {
                        why_set(why, "%s %s has byte 0x%02x at byte %zu; segments are A-Z a-z 0-9 _ -%s", what,
                                quote(shown, text, len), segment[i], start + i,
                                wildcards ? ", or a whole * or a last >" : "");
                    }
                    return false;
                }
            }
        }
        start = end + 1;
    }
    return true;
}

bool hc_check_topic(const uint8_t *topic, size_t len, hc_why *why) {
    return check_segments(topic, len, false, "topic", why);
}

bool hc_check_pattern(const uint8_t *pattern, size_t len, hc_why *why) {
    return check_segments(pattern, len, true, "pattern", why);
}

bool hc_check_subscription_name(const uint8_t *name, size_t len, hc_why *why) {
    char shown[QUOTE_BYTES];
    if (len > HERALD_SUBSCRIPTION_NAME_BYTES_MAX) {
        why_set(why, "subscription name %s is %zu bytes; at most 64 are allowed", quote(shown, name, len), len);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = name[i];
        if (!(is_segment_byte(c) || c == '.')) {
            why_set(why, "subscription name %s has byte 0x%02x at byte %zu; names are A-Z a-z 0-9 _ . -",
                    quote(shown, name, len), c, i);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- tables ---- */

const char *hc_frame_type_name(uint8_t type) {
    switch (type) {
    case HC_HELLO: return "Hello";
    case HC_PUBLISH: return "Publish";
    case HC_PUBLISH_BATCH: return "PublishBatch";
    case HC_SUBSCRIBE: return "Subscribe";
    case HC_CONFIRM: return "Confirm";
    case HC_NAK: return "Nak";
    case HC_WORKING: return "Working";
    case HC_REJECT: return "Reject";
    case HC_RECOVERED: return "Recovered";
    case HC_STATUS: return "Status";
    case HC_PING: return "Ping";
    case HC_GOODBYE: return "Goodbye";
    case HC_ADMIN: return "Admin";
    case HC_HELLO_OK: return "HelloOk";
    case HC_STORED: return "Stored";
    case HC_ERROR: return "Error";
    case HC_SUBSCRIBED: return "Subscribed";
    case HC_DELIVER: return "Deliver";
    case HC_RECOVERY_DONE: return "RecoveryDone";
    case HC_STATUS_REPLY: return "StatusReply";
    case HC_PONG: return "Pong";
    default: return "an undefined frame type";
    }
}

bool hc_error_code_closes(uint16_t code) {
    return code != HERALD_SERVER_FULL && code != HERALD_SERVER_FORBIDDEN;
}

/* ------------------------------------------------------------- encoding ---- */

static void put_header(uint8_t *out, uint8_t type, size_t body_bytes) {
    hc_store_u32(out, (uint32_t)(2 + body_bytes));
    out[4] = type;
    out[5] = 0;
}

/* Refuses a frame of frame_bytes that exceeds the daemon's limit or the buffer. */
static bool frame_fits(size_t frame_bytes, size_t out_cap, uint32_t frame_bytes_max, const char *what, hc_why *why) {
    size_t limit = frame_bytes_max < HERALD_FRAME_BYTES_MAX ? frame_bytes_max : HERALD_FRAME_BYTES_MAX;
    if (frame_bytes > limit) {
        why_set(why, "%s would be a frame of %zu bytes; the daemon accepts frames of at most %zu bytes", what,
                frame_bytes, limit);
        return false;
    }
    if (frame_bytes > out_cap) {
        why_set(why, "%s would be a frame of %zu bytes; the send buffer holds %zu", what, frame_bytes, out_cap);
        return false;
    }
    return true;
}

size_t hc_encode_hello(uint8_t *out, size_t out_cap, uint16_t version_min, uint16_t version_max, uint8_t role,
                       const uint8_t *client_name, size_t client_name_len, hc_why *why) {
    if (version_min < 1 || version_max < version_min) {
        why_set(why, "hello version range %u..=%u is invalid; it must be 1 <= min <= max", version_min, version_max);
        return 0;
    }
    if (role < HERALD_ROLE_PRODUCER || role > HERALD_ROLE_CONTROL) {
        why_set(why, "role %u is not one of 1 producer, 2 subscriber, 3 both, 4 control", role);
        return 0;
    }
    if (client_name_len > HERALD_CLIENT_NAME_BYTES_MAX) {
        why_set(why, "client name is %zu bytes; at most 255 are allowed", client_name_len);
        return 0;
    }
    if (!hc_check_utf8(client_name, client_name_len, "client name", why)) {
        return 0;
    }
    size_t body = HC_HELLO_FIXED_BYTES + client_name_len;
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + body, out_cap, HERALD_FRAME_BYTES_MAX, "hello", why)) {
        return 0;
    }
    put_header(out, HC_HELLO, body);
    uint8_t *b = out + HERALD_FRAME_HEADER_BYTES;
    memcpy(b, HELLO_MAGIC, sizeof HELLO_MAGIC);
    hc_store_u16(b + 4, version_min);
    hc_store_u16(b + 6, version_max);
    b[8] = role;
    b[9] = (uint8_t)client_name_len;
    if (client_name_len > 0) {
        memcpy(b + 10, client_name, client_name_len);
    }
    return HERALD_FRAME_HEADER_BYTES + body;
}

bool hc_event_from_api(const herald_event *event, uint32_t payload_bytes_max, hc_event_view *view, hc_why *why) {
    if (event == NULL) {
        why_set(why, "the event is NULL");
        return false;
    }
    if (event->topic == NULL) {
        why_set(why, "the event's topic is NULL; every event needs a topic such as \"app.component.what\"");
        return false;
    }
    if (event->severity > HERALD_SEVERITY_DEBUG) {
        why_set(why, "severity %u is out of range; it is 0 (emerg) ..= 7 (debug)", event->severity);
        return false;
    }
    size_t topic_len = strnlen(event->topic, HERALD_TOPIC_BYTES_MAX + 1);
    if (!hc_check_topic((const uint8_t *)event->topic, topic_len, why)) {
        return false;
    }
    size_t source_len = event->source == NULL ? 0 : strnlen(event->source, HERALD_SOURCE_BYTES_MAX + 1);
    if (source_len > HERALD_SOURCE_BYTES_MAX) {
        why_set(why, "the event's source is longer than 255 bytes");
        return false;
    }
    if (!hc_check_utf8((const uint8_t *)event->source, source_len, "the event's source", why)) {
        return false;
    }
    if (event->key_len > HERALD_KEY_BYTES_MAX) {
        why_set(why, "the idempotency key is %zu bytes; at most 64 are allowed", event->key_len);
        return false;
    }
    if (event->key_len > 0 && event->key == NULL) {
        why_set(why, "the idempotency key is NULL but key_len is %zu", event->key_len);
        return false;
    }
    uint32_t payload_max = payload_bytes_max < HERALD_EVENT_PAYLOAD_BYTES_MAX ? payload_bytes_max
                                                                               : HERALD_EVENT_PAYLOAD_BYTES_MAX;
    if (event->payload_len > payload_max) {
        why_set(why, "the payload is %zu bytes; the daemon accepts at most %u", event->payload_len, payload_max);
        return false;
    }
    if (event->payload_len > 0 && event->payload == NULL) {
        why_set(why, "the payload is NULL but payload_len is %zu", event->payload_len);
        return false;
    }
    view->severity = event->severity;
    view->flags = event->flags;
    view->topic = (const uint8_t *)event->topic;
    view->topic_len = (uint8_t)topic_len;
    view->source = (const uint8_t *)event->source;
    view->source_len = (uint8_t)source_len;
    view->key = (const uint8_t *)event->key;
    view->key_len = (uint8_t)event->key_len;
    view->payload = (const uint8_t *)event->payload;
    view->payload_len = (uint32_t)event->payload_len;
    return true;
}

size_t hc_event_encoded_bytes(const hc_event_view *view) {
    return HC_EVENT_FIXED_BYTES + (size_t)view->topic_len + view->source_len + view->key_len + view->payload_len;
}

/* Writes a checked event at out; returns the bytes written. */
static size_t put_event(uint8_t *out, const hc_event_view *e) {
    out[0] = e->severity;
    out[1] = e->topic_len;
    out[2] = e->source_len;
    out[3] = e->key_len;
    hc_store_u16(out + 4, e->flags);
    hc_store_u32(out + 6, e->payload_len);
    size_t at = HC_EVENT_FIXED_BYTES;
    memcpy(out + at, e->topic, e->topic_len);
    at += e->topic_len;
    if (e->source_len > 0) {
        memcpy(out + at, e->source, e->source_len);
        at += e->source_len;
    }
    if (e->key_len > 0) {
        memcpy(out + at, e->key, e->key_len);
        at += e->key_len;
    }
    if (e->payload_len > 0) {
        memcpy(out + at, e->payload, e->payload_len);
        at += e->payload_len;
    }
    return at;
}

size_t hc_encode_publish(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, uint64_t correlation,
                         const hc_event_view *event, hc_why *why) {
    size_t body = HC_PUBLISH_FIXED_BYTES + hc_event_encoded_bytes(event);
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + body, out_cap, frame_bytes_max, "the publish", why)) {
        return 0;
    }
    put_header(out, HC_PUBLISH, body);
    hc_store_u64(out + HERALD_FRAME_HEADER_BYTES, correlation);
    (void)put_event(out + HERALD_FRAME_HEADER_BYTES + HC_PUBLISH_FIXED_BYTES, event);
    return HERALD_FRAME_HEADER_BYTES + body;
}

size_t hc_encode_publish_batch(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, uint64_t correlation,
                               const herald_event *events, size_t count, uint32_t payload_bytes_max, hc_why *why) {
    if (events == NULL && count > 0) {
        why_set(why, "the batch's events are NULL");
        return 0;
    }
    if (count < 1 || count > HERALD_BATCH_EVENTS_MAX) {
        why_set(why, "a batch holds 1..=256 events, not %zu", count);
        return 0;
    }
    /* First pass: check every event and the frame's size, so nothing is written for a
     * batch the daemon would refuse as a whole. */
    size_t body = HC_BATCH_FIXED_BYTES;
    for (size_t i = 0; i < count; i++) {
        hc_event_view view;
        hc_why inner;
        if (!hc_event_from_api(&events[i], payload_bytes_max, &view, &inner)) {
            why_set(why, "batch event %zu: %s", i, inner.text);
            return 0;
        }
        body += hc_event_encoded_bytes(&view);
        if (HERALD_FRAME_HEADER_BYTES + body > HERALD_FRAME_BYTES_MAX) {
            break; /* frame_fits below says so; stop adding before the sum means nothing */
        }
    }
    char what[64];
    (void)snprintf(what, sizeof what, "a batch of %zu events", count);
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + body, out_cap, frame_bytes_max, what, why)) {
        (void)snprintf(why->text + strlen(why->text), sizeof why->text - strlen(why->text),
                       ": split it into smaller batches");
        return 0;
    }
    put_header(out, HC_PUBLISH_BATCH, body);
    uint8_t *b = out + HERALD_FRAME_HEADER_BYTES;
    hc_store_u64(b, correlation);
    hc_store_u16(b + 8, (uint16_t)count);
    size_t at = HC_BATCH_FIXED_BYTES;
    for (size_t i = 0; i < count; i++) {
        hc_event_view view;
        hc_why unused;
        bool valid = hc_event_from_api(&events[i], payload_bytes_max, &view, &unused);
        (void)valid; /* checked in the first pass */
        at += put_event(b + at, &view);
    }
    return HERALD_FRAME_HEADER_BYTES + body;
}

size_t hc_encode_subscribe(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max,
                           const herald_subscription *s, hc_why *why) {
    if (s == NULL) {
        why_set(why, "the subscription is NULL");
        return 0;
    }
    const char *name = s->name == NULL ? "" : s->name;
    size_t name_len = strnlen(name, HERALD_SUBSCRIPTION_NAME_BYTES_MAX + 1);
    if (!hc_check_subscription_name((const uint8_t *)name, name_len, why)) {
        return 0;
    }
    if (s->pattern_count < 1 || s->pattern_count > HERALD_SUBSCRIPTION_PATTERNS_MAX) {
        why_set(why, "a subscription has 1..=16 patterns, not %zu (\">\" matches every topic)", s->pattern_count);
        return 0;
    }
    if (s->patterns == NULL) {
        why_set(why, "the subscription's patterns are NULL but pattern_count is %zu", s->pattern_count);
        return 0;
    }
    size_t patterns_bytes = 0;
    for (size_t i = 0; i < s->pattern_count; i++) {
        if (s->patterns[i] == NULL) {
            why_set(why, "pattern %zu is NULL", i);
            return 0;
        }
        size_t len = strnlen(s->patterns[i], HERALD_PATTERN_BYTES_MAX + 1);
        hc_why inner;
        if (!hc_check_pattern((const uint8_t *)s->patterns[i], len, &inner)) {
            why_set(why, "pattern %zu: %s", i, inner.text);
            return 0;
        }
        patterns_bytes += 1 + len;
    }
    if (patterns_bytes > HERALD_SUBSCRIPTION_PATTERN_LIST_BYTES_MAX) {
        why_set(why, "the subscription's patterns take %zu bytes with their length bytes; the limit is %u",
                patterns_bytes, HERALD_SUBSCRIPTION_PATTERN_LIST_BYTES_MAX);
        return 0;
    }
    if (s->group && name_len == 0) {
        why_set(why, "a work-queue group (group = true) needs a durable subscription name");
        return 0;
    }
    if (s->window_events < 1 || s->window_events > HERALD_WINDOW_EVENTS_MAX) {
        why_set(why, "window_events %u is out of range 1..=4096 (herald_subscription_init sets 64)", s->window_events);
        return 0;
    }
    if (s->ack_deadline_ms > HERALD_ACK_DEADLINE_MS_MAX) {
        why_set(why, "ack_deadline_ms %u is above 3600000 (one hour); 0 takes the daemon's default",
                s->ack_deadline_ms);
        return 0;
    }
    if (s->min_severity > HERALD_SEVERITY_DEBUG) {
        why_set(why, "min_severity %u is out of range 0..=7 (7 delivers every severity)", s->min_severity);
        return 0;
    }
    size_t body = HC_SUBSCRIBE_FIXED_BYTES + name_len + patterns_bytes;
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + body, out_cap, frame_bytes_max, "the subscribe", why)) {
        return 0;
    }
    put_header(out, HC_SUBSCRIBE, body);
    uint8_t *b = out + HERALD_FRAME_HEADER_BYTES;
    hc_store_u32(b, (s->automatic_recovery ? HC_SUBSCRIBE_AUTOMATIC_RECOVERY : 0u) |
                        (s->group ? HC_SUBSCRIBE_GROUP : 0u));
    hc_store_u32(b + 4, s->window_events);
    hc_store_u32(b + 8, s->ack_deadline_ms);
    hc_store_u16(b + 12, s->max_deliveries);
    b[14] = s->min_severity;
    b[15] = (uint8_t)name_len;
    b[16] = (uint8_t)s->pattern_count;
    size_t at = HC_SUBSCRIBE_FIXED_BYTES;
    memcpy(b + at, name, name_len);
    at += name_len;
    for (size_t i = 0; i < s->pattern_count; i++) {
        size_t len = strlen(s->patterns[i]); /* checked above: 1..=255 */
        b[at++] = (uint8_t)len;
        memcpy(b + at, s->patterns[i], len);
        at += len;
    }
    return HERALD_FRAME_HEADER_BYTES + body;
}

size_t hc_encode_confirm(uint8_t *out, size_t out_cap, uint64_t first_seq, uint64_t last_seq, hc_why *why) {
    if (first_seq > last_seq) {
        why_set(why, "confirm range %llu..=%llu is empty; first_seq must not exceed last_seq",
                (unsigned long long)first_seq, (unsigned long long)last_seq);
        return 0;
    }
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + HC_CONFIRM_BYTES, out_cap, HERALD_FRAME_BYTES_MAX, "confirm", why)) {
        return 0;
    }
    put_header(out, HC_CONFIRM, HC_CONFIRM_BYTES);
    hc_store_u64(out + HERALD_FRAME_HEADER_BYTES, first_seq);
    hc_store_u64(out + HERALD_FRAME_HEADER_BYTES + 8, last_seq);
    return HERALD_FRAME_HEADER_BYTES + HC_CONFIRM_BYTES;
}

size_t hc_encode_nak(uint8_t *out, size_t out_cap, uint64_t seq, uint32_t delay_ms, hc_why *why) {
    if (delay_ms > HERALD_NAK_DELAY_MS_MAX) {
        why_set(why, "nak delay_ms %u is above 3600000 (one hour)", delay_ms);
        return 0;
    }
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + HC_NAK_BYTES, out_cap, HERALD_FRAME_BYTES_MAX, "nak", why)) {
        return 0;
    }
    put_header(out, HC_NAK, HC_NAK_BYTES);
    hc_store_u64(out + HERALD_FRAME_HEADER_BYTES, seq);
    hc_store_u32(out + HERALD_FRAME_HEADER_BYTES + 8, delay_ms);
    return HERALD_FRAME_HEADER_BYTES + HC_NAK_BYTES;
}

size_t hc_encode_u64_body(uint8_t *out, size_t out_cap, uint8_t type, uint64_t value, hc_why *why) {
    if (type != HC_WORKING && type != HC_REJECT && type != HC_PING) {
        why_set(why, "frame type 0x%02x has no u64 body", type);
        return 0;
    }
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + HC_SEQ_BODY_BYTES, out_cap, HERALD_FRAME_BYTES_MAX,
                    hc_frame_type_name(type), why)) {
        return 0;
    }
    put_header(out, type, HC_SEQ_BODY_BYTES);
    hc_store_u64(out + HERALD_FRAME_HEADER_BYTES, value);
    return HERALD_FRAME_HEADER_BYTES + HC_SEQ_BODY_BYTES;
}

size_t hc_encode_empty(uint8_t *out, size_t out_cap, uint8_t type, hc_why *why) {
    if (type != HC_RECOVERED && type != HC_STATUS && type != HC_GOODBYE) {
        why_set(why, "frame type 0x%02x is not an empty frame", type);
        return 0;
    }
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES, out_cap, HERALD_FRAME_BYTES_MAX, hc_frame_type_name(type), why)) {
        return 0;
    }
    put_header(out, type, 0);
    return HERALD_FRAME_HEADER_BYTES;
}

size_t hc_encode_admin(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, const uint8_t *json, size_t json_len,
                       hc_why *why) {
    if (json_len < 1 || json_len > HERALD_ADMIN_REQUEST_BYTES_MAX) {
        why_set(why, "an admin request is 1..=4096 bytes of JSON, not %zu", json_len);
        return 0;
    }
    if (!hc_check_utf8(json, json_len, "the admin request", why)) {
        return 0;
    }
    if (!frame_fits(HERALD_FRAME_HEADER_BYTES + json_len, out_cap, frame_bytes_max, "the admin request", why)) {
        return 0;
    }
    put_header(out, HC_ADMIN, json_len);
    memcpy(out + HERALD_FRAME_HEADER_BYTES, json, json_len);
    return HERALD_FRAME_HEADER_BYTES + json_len;
}

/* ------------------------------------------------------------- decoding ---- */

bool hc_check_length(const uint8_t length_field[4], uint32_t *body_bytes, hc_why *why) {
    uint32_t length = hc_load_u32(length_field);
    if (length < 2) {
        why_set(why, "frame length %u is below 2 (the type and reserved bytes)", length);
        return false;
    }
    if (length > HERALD_FRAME_BYTES_MAX - HC_LENGTH_FIELD_BYTES) {
        why_set(why, "frame length %u is above the largest, %u", length,
                HERALD_FRAME_BYTES_MAX - HC_LENGTH_FIELD_BYTES);
        return false;
    }
    *body_bytes = length - 2;
    return true;
}

bool hc_check_type(uint8_t type, uint8_t reserved, hc_why *why) {
    if (reserved != 0) {
        why_set(why, "frame header's reserved byte is 0x%02x, not 0", reserved);
        return false;
    }
    if (type >= HC_HELLO && type <= HC_ADMIN) {
        why_set(why, "the daemon sent %s (0x%02x), a client-to-server frame", hc_frame_type_name(type), type);
        return false;
    }
    if (type < HC_HELLO_OK || type > HC_PONG) {
        why_set(why, "frame type 0x%02x is undefined in protocol version 1", type);
        return false;
    }
    return true;
}

static bool body_is(const char *name, size_t have, size_t want, hc_why *why) {
    if (have != want) {
        why_set(why, "%s body is %zu bytes; it must be exactly %zu", name, have, want);
        return false;
    }
    return true;
}

static bool decode_event(const uint8_t *p, size_t n, hc_event_view *e, hc_why *why) {
    if (n < HC_EVENT_FIXED_BYTES) {
        why_set(why, "Deliver's event is %zu bytes, shorter than its 10 fixed bytes", n);
        return false;
    }
    e->severity = p[0];
    e->topic_len = p[1];
    e->source_len = p[2];
    e->key_len = p[3];
    e->flags = hc_load_u16(p + 4);
    e->payload_len = hc_load_u32(p + 6);
    if (e->severity > HERALD_SEVERITY_DEBUG) {
        why_set(why, "Deliver's event has severity %u, outside 0..=7", e->severity);
        return false;
    }
    if (e->key_len > HERALD_KEY_BYTES_MAX) {
        why_set(why, "Deliver's event has key_len %u, above 64", e->key_len);
        return false;
    }
    if (e->payload_len > HERALD_EVENT_PAYLOAD_BYTES_MAX) {
        why_set(why, "Deliver's event has payload_len %u, above 65536", e->payload_len);
        return false;
    }
    /* Each length is now bounded, so the sum cannot overflow a size_t. */
    size_t want = HC_EVENT_FIXED_BYTES + (size_t)e->topic_len + e->source_len + e->key_len + e->payload_len;
    if (want != n) {
        why_set(why, "Deliver's event lengths add up to %zu bytes but the frame holds %zu", want, n);
        return false;
    }
    size_t at = HC_EVENT_FIXED_BYTES;
    e->topic = p + at;
    at += e->topic_len;
    e->source = p + at;
    at += e->source_len;
    e->key = p + at;
    at += e->key_len;
    e->payload = p + at;
    hc_why inner;
    if (!hc_check_topic(e->topic, e->topic_len, &inner)) {
        why_set(why, "Deliver's %s", inner.text);
        return false;
    }
    if (!hc_check_utf8(e->source, e->source_len, "Deliver's source", why)) {
        return false;
    }
    return true;
}

bool hc_decode(const uint8_t *frame, size_t frame_len, hc_frame *out, hc_why *why) {
    uint32_t body_bytes;
    if (frame_len < HERALD_FRAME_HEADER_BYTES) {
        why_set(why, "a frame of %zu bytes is shorter than its 6-byte header", frame_len);
        return false;
    }
    if (!hc_check_length(frame, &body_bytes, why) || !hc_check_type(frame[4], frame[5], why)) {
        return false;
    }
    if ((size_t)body_bytes + HERALD_FRAME_HEADER_BYTES != frame_len) {
        why_set(why, "frame length field says %u body bytes but %zu are present", body_bytes,
                frame_len - HERALD_FRAME_HEADER_BYTES);
        return false;
    }
    const uint8_t *b = frame + HERALD_FRAME_HEADER_BYTES;
    size_t n = body_bytes;
    out->type = frame[4];
    switch (out->type) {
    case HC_HELLO_OK:
        if (!body_is("HelloOk", n, HC_HELLO_OK_BYTES, why)) {
            return false;
        }
        out->u.hello_ok.version = hc_load_u16(b);
        out->u.hello_ok.node_id = hc_load_u64(b + 2);
        out->u.hello_ok.frame_bytes_max = hc_load_u32(b + 10);
        out->u.hello_ok.event_payload_bytes_max = hc_load_u32(b + 14);
        if (out->u.hello_ok.version < 1) {
            why_set(why, "HelloOk names version 0; versions start at 1");
            return false;
        }
        if (out->u.hello_ok.frame_bytes_max < HERALD_FRAME_HEADER_BYTES + HC_CONFIRM_BYTES) {
            why_set(why, "HelloOk says frame_bytes_max is %u, too small for any request",
                    out->u.hello_ok.frame_bytes_max);
            return false;
        }
        return true;
    case HC_STORED:
        if (!body_is("Stored", n, HC_STORED_BYTES, why)) {
            return false;
        }
        out->u.stored.correlation = hc_load_u64(b);
        out->u.stored.first_seq = hc_load_u64(b + 8);
        out->u.stored.last_seq = hc_load_u64(b + 16);
        out->u.stored.count = hc_load_u16(b + 24);
        if (out->u.stored.last_seq < out->u.stored.first_seq) {
            why_set(why, "Stored has last_seq %llu below first_seq %llu", (unsigned long long)out->u.stored.last_seq,
                    (unsigned long long)out->u.stored.first_seq);
            return false;
        }
        if (out->u.stored.count < 1 || out->u.stored.count > HERALD_BATCH_EVENTS_MAX) {
            why_set(why, "Stored has count %u, outside 1..=256", out->u.stored.count);
            return false;
        }
        /* last - first + 1 >= count, written so that it cannot overflow. */
        if (out->u.stored.last_seq - out->u.stored.first_seq < (uint64_t)out->u.stored.count - 1) {
            why_set(why, "Stored has count %u but its range %llu..=%llu holds fewer numbers", out->u.stored.count,
                    (unsigned long long)out->u.stored.first_seq, (unsigned long long)out->u.stored.last_seq);
            return false;
        }
        return true;
    case HC_ERROR: {
        if (n < HC_ERROR_FIXED_BYTES) {
            why_set(why, "Error body is %zu bytes, shorter than its 12 fixed bytes", n);
            return false;
        }
        out->u.error.correlation = hc_load_u64(b);
        out->u.error.code = hc_load_u16(b + 8);
        out->u.error.message_len = hc_load_u16(b + 10);
        out->u.error.message = b + HC_ERROR_FIXED_BYTES;
        if (out->u.error.code == 0) {
            why_set(why, "Error has code 0, which no error is");
            return false;
        }
        if (out->u.error.message_len > HERALD_ERROR_MESSAGE_BYTES_MAX) {
            why_set(why, "Error has message_len %u, above 1024", out->u.error.message_len);
            return false;
        }
        if (!body_is("Error", n, HC_ERROR_FIXED_BYTES + (size_t)out->u.error.message_len, why)) {
            return false;
        }
        return hc_check_utf8(out->u.error.message, out->u.error.message_len, "Error's message", why);
    }
    case HC_SUBSCRIBED:
        if (!body_is("Subscribed", n, HC_SUBSCRIBED_BYTES, why)) {
            return false;
        }
        out->u.subscribed.mode = b[0];
        out->u.subscribed.pending_events = hc_load_u64(b + 1);
        if (out->u.subscribed.mode > 1) {
            why_set(why, "Subscribed has mode %u; it is 0 (normal) or 1 (recovering)", out->u.subscribed.mode);
            return false;
        }
        return true;
    case HC_DELIVER:
        if (n < HC_DELIVER_FIXED_BYTES) {
            why_set(why, "Deliver body is %zu bytes, shorter than its 20 fixed bytes", n);
            return false;
        }
        out->u.deliver.seq = hc_load_u64(b);
        out->u.deliver.timestamp_ns = hc_load_u64(b + 8);
        out->u.deliver.delivery_flags = hc_load_u16(b + 16);
        out->u.deliver.delivery_count = hc_load_u16(b + 18);
        if ((out->u.deliver.delivery_flags & (uint16_t)~HC_DELIVERY_REDELIVERED) != 0) {
            why_set(why, "Deliver has delivery_flags 0x%04x; only bit 0 is defined", out->u.deliver.delivery_flags);
            return false;
        }
        if (out->u.deliver.delivery_count < 1) {
            why_set(why, "Deliver has delivery_count 0; it counts this delivery, so it is at least 1");
            return false;
        }
        return decode_event(b + HC_DELIVER_FIXED_BYTES, n - HC_DELIVER_FIXED_BYTES, &out->u.deliver.event, why);
    case HC_RECOVERY_DONE:
        return body_is("RecoveryDone", n, 0, why);
    case HC_STATUS_REPLY:
        /* n <= 81 914 = HERALD_STATUS_JSON_BYTES_MAX, by hc_check_length. */
        out->u.status_reply.json = b;
        out->u.status_reply.json_len = (uint32_t)n;
        return hc_check_utf8(b, n, "StatusReply's JSON", why);
    case HC_PONG:
        if (!body_is("Pong", n, HC_PONG_BYTES, why)) {
            return false;
        }
        out->u.pong.token = hc_load_u64(b);
        return true;
    default:
        /* hc_check_type let only server types through. */
        why_set(why, "frame type 0x%02x is undefined", out->type);
        return false;
    }
}
