/*
 * codec.h: the version 1 wire format (PROTOCOL.md sections 2 to 4, 8 and 11), with no
 * I/O and no allocation. Encoders validate every argument and write one whole frame
 * into a caller's buffer; decoders take one whole frame from the server and check
 * every length, count, range and grammar before anything of it is used.
 *
 * Internal to libherald (and its tests); not installed.
 */
#ifndef HERALD_CODEC_H
#define HERALD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald.h"

/* Frame types (PROTOCOL.md section 3). */
enum {
    HC_HELLO = 0x01,
    HC_PUBLISH = 0x02,
    HC_PUBLISH_BATCH = 0x03,
    HC_SUBSCRIBE = 0x04,
    HC_CONFIRM = 0x05,
    HC_NAK = 0x06,
    HC_WORKING = 0x07,
    HC_REJECT = 0x08,
    HC_RECOVERED = 0x09,
    HC_STATUS = 0x0A,
    HC_PING = 0x0B,
    HC_GOODBYE = 0x0C,
    HC_ADMIN = 0x0D,
    HC_HELLO_OK = 0x81,
    HC_STORED = 0x82,
    HC_ERROR = 0x83,
    HC_SUBSCRIBED = 0x84,
    HC_DELIVER = 0x85,
    HC_RECOVERY_DONE = 0x86,
    HC_STATUS_REPLY = 0x87,
    HC_PONG = 0x88
};

/* Fixed sizes of bodies and their parts (section 3, section 4). */
enum {
    HC_EVENT_FIXED_BYTES = 10,   /* severity, four lengths, flags */
    HC_HELLO_FIXED_BYTES = 10,
    HC_PUBLISH_FIXED_BYTES = 8,  /* correlation */
    HC_BATCH_FIXED_BYTES = 10,   /* correlation, count */
    HC_SUBSCRIBE_FIXED_BYTES = 17,
    HC_CONFIRM_BYTES = 16,
    HC_NAK_BYTES = 12,
    HC_SEQ_BODY_BYTES = 8,       /* Working, Reject, Ping */
    HC_HELLO_OK_BYTES = 18,
    HC_STORED_BYTES = 26,
    HC_ERROR_FIXED_BYTES = 12,
    HC_SUBSCRIBED_BYTES = 9,
    HC_DELIVER_FIXED_BYTES = 20,
    HC_PONG_BYTES = 8,
    HC_LENGTH_FIELD_BYTES = 4,
    /* The largest event: every field at its limit (66 120 bytes, section 11). */
    HC_EVENT_BYTES_MAX = HC_EVENT_FIXED_BYTES + HERALD_TOPIC_BYTES_MAX + HERALD_SOURCE_BYTES_MAX +
                         HERALD_KEY_BYTES_MAX + HERALD_EVENT_PAYLOAD_BYTES_MAX,
    /* The largest Subscribe body: name and 16 patterns at their limits. */
    HC_SUBSCRIBE_BYTES_MAX = HC_SUBSCRIBE_FIXED_BYTES + HERALD_SUBSCRIPTION_NAME_BYTES_MAX +
                             HERALD_SUBSCRIPTION_PATTERNS_MAX * (1 + HERALD_PATTERN_BYTES_MAX)
};

/* How the limits relate (section 11): checked here so a changed constant cannot
 * silently break a frame that must fit. */
_Static_assert(HC_EVENT_BYTES_MAX == 66120, "section 11: the largest event is 66 120 bytes");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HC_DELIVER_FIXED_BYTES + HC_EVENT_BYTES_MAX <= HERALD_FRAME_BYTES_MAX,
               "a Deliver of the largest event fits one frame");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HC_BATCH_FIXED_BYTES + HC_EVENT_BYTES_MAX <= HERALD_FRAME_BYTES_MAX,
               "a PublishBatch of the largest event fits one frame");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HC_SUBSCRIBE_BYTES_MAX <= HERALD_FRAME_BYTES_MAX,
               "the largest Subscribe fits one frame");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HERALD_STATUS_JSON_BYTES_MAX == HERALD_FRAME_BYTES_MAX,
               "a status reply fills at most one frame");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HC_ERROR_FIXED_BYTES + HERALD_ERROR_MESSAGE_BYTES_MAX <=
                   HERALD_FRAME_BYTES_MAX,
               "the longest Error fits one frame");
_Static_assert(HERALD_FRAME_HEADER_BYTES + HERALD_ADMIN_REQUEST_BYTES_MAX <= HERALD_FRAME_BYTES_MAX,
               "the longest Admin fits one frame");
_Static_assert(HERALD_RECEIVE_BUFFER_BYTES_MIN >= HERALD_FRAME_BYTES_MAX,
               "the receive buffer always holds one whole frame");
_Static_assert(HERALD_BATCH_EVENTS_MAX <= UINT16_MAX, "a batch count is a u16");

/* Why an encode or decode refused: a sentence for people, NUL-terminated. */
typedef struct hc_why {
    char text[320];
} hc_why;

/* One event as it is on the wire, pointing into a frame (decoded) or a caller's
 * arguments (to encode). Lengths are those of section 4.1. */
typedef struct hc_event_view {
    uint8_t severity;
    uint16_t flags;
    const uint8_t *topic;
    uint8_t topic_len;
    const uint8_t *source;
    uint8_t source_len;
    const uint8_t *key;
    uint8_t key_len;
    const uint8_t *payload;
    uint32_t payload_len;
} hc_event_view;

/* One decoded server frame. Pointers point into the frame that was decoded. */
typedef struct hc_frame {
    uint8_t type;
    union {
        struct {
            uint16_t version;
            uint64_t node_id;
            uint32_t frame_bytes_max;
            uint32_t event_payload_bytes_max;
        } hello_ok;
        struct {
            uint64_t correlation;
            uint64_t first_seq;
            uint64_t last_seq;
            uint16_t count;
        } stored;
        struct {
            uint64_t correlation;
            uint16_t code;
            const uint8_t *message;
            uint16_t message_len;
        } error;
        struct {
            uint8_t mode;
            uint64_t pending_events;
        } subscribed;
        struct {
            uint64_t seq;
            uint64_t timestamp_ns;
            uint16_t delivery_flags;
            uint16_t delivery_count;
            hc_event_view event;
        } deliver;
        struct {
            const uint8_t *json;
            uint32_t json_len;
        } status_reply;
        struct {
            uint64_t token;
        } pong;
    } u;
} hc_frame;

/* Delivery flag bit 0 (section 4.3); the other bits are reserved. */
#define HC_DELIVERY_REDELIVERED 0x0001u
/* Subscribe flag bit 0 (section 4.2); the other bits are reserved. */
#define HC_SUBSCRIBE_AUTOMATIC_RECOVERY 0x00000001u
#define HC_SUBSCRIBE_GROUP 0x00000002u

/* Little-endian loads and stores (section 1). */
uint16_t hc_load_u16(const uint8_t *p);
uint32_t hc_load_u32(const uint8_t *p);
uint64_t hc_load_u64(const uint8_t *p);
void hc_store_u16(uint8_t *p, uint16_t v);
void hc_store_u32(uint8_t *p, uint32_t v);
void hc_store_u64(uint8_t *p, uint64_t v);

/* Text rules. Each returns true if valid, else false with why filled (what is wrong
 * and at which byte); `what` names the field in the sentence. */
bool hc_check_utf8(const uint8_t *text, size_t len, const char *what, hc_why *why);
bool hc_check_topic(const uint8_t *topic, size_t len, hc_why *why);
bool hc_check_pattern(const uint8_t *pattern, size_t len, hc_why *why);
bool hc_check_subscription_name(const uint8_t *name, size_t len, hc_why *why);

/* Name of a frame type for messages ("Deliver", "undefined 0x42"); static or why-free. */
const char *hc_frame_type_name(uint8_t type);
/* Whether an Error code closes the connection (section 7): all but `full`; an unknown
 * code is taken to close. */
bool hc_error_code_closes(uint16_t code);

/*
 * Encoders. Each writes one whole frame at out (header included) and returns its size,
 * or returns 0 with why filled when an argument breaks a rule or the frame would exceed
 * frame_bytes_max (the smaller of HERALD_FRAME_BYTES_MAX and what HelloOk said) or
 * out_cap. Nothing is written to out unless the whole frame is valid.
 */
size_t hc_encode_hello(uint8_t *out, size_t out_cap, uint16_t version_min, uint16_t version_max, uint8_t role,
                       const uint8_t *client_name, size_t client_name_len, hc_why *why);
/* Checks one event against section 4.1 and the daemon's payload limit, and fills view. */
bool hc_event_from_api(const herald_event *event, uint32_t payload_bytes_max, hc_event_view *view, hc_why *why);
size_t hc_event_encoded_bytes(const hc_event_view *view);
size_t hc_encode_publish(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, uint64_t correlation,
                         const hc_event_view *event, hc_why *why);
size_t hc_encode_publish_batch(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, uint64_t correlation,
                               const herald_event *events, size_t count, uint32_t payload_bytes_max, hc_why *why);
size_t hc_encode_subscribe(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max,
                           const herald_subscription *subscription, hc_why *why);
size_t hc_encode_confirm(uint8_t *out, size_t out_cap, uint64_t first_seq, uint64_t last_seq, hc_why *why);
size_t hc_encode_nak(uint8_t *out, size_t out_cap, uint64_t seq, uint32_t delay_ms, hc_why *why);
/* Working, Reject or Ping: one u64. */
size_t hc_encode_u64_body(uint8_t *out, size_t out_cap, uint8_t type, uint64_t value, hc_why *why);
/* Recovered, Status or Goodbye: no body. */
size_t hc_encode_empty(uint8_t *out, size_t out_cap, uint8_t type, hc_why *why);
size_t hc_encode_admin(uint8_t *out, size_t out_cap, uint32_t frame_bytes_max, const uint8_t *json, size_t json_len,
                       hc_why *why);

/*
 * Decoding a server frame, in two steps so that a bad header is refused before its
 * body is waited for (section 2).
 *
 * hc_check_length: the 4-byte length field says body_bytes (length - 2) follow the
 * type and reserved bytes; refuses a length below 2 or above HERALD_FRAME_BYTES_MAX - 4.
 * hc_check_type: the type and reserved bytes; refuses a non-zero reserved byte, an
 * undefined type and a client-to-server type.
 * hc_decode: one whole frame of frame_len bytes (header included); checks both again,
 * then the body exactly. Returns true with out filled (pointing into frame) or false
 * with why filled; out is then unspecified and must not be used.
 */
bool hc_check_length(const uint8_t length_field[4], uint32_t *body_bytes, hc_why *why);
bool hc_check_type(uint8_t type, uint8_t reserved, hc_why *why);
bool hc_decode(const uint8_t *frame, size_t frame_len, hc_frame *out, hc_why *why);

#endif /* HERALD_CODEC_H */
