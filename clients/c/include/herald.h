/*
 * herald.h: libherald, a C client for the herald daemon (wire protocol version 1).
 *
 * herald stores event messages persistently and delivers them reliably over a Unix
 * stream socket. This library speaks its binary protocol (PROTOCOL.md in the herald
 * repository) and nothing else: no threads, no global state, no signal handlers.
 *
 * Conventions that hold for the whole API
 * ---------------------------------------
 * - Every fallible function returns a herald_status: HERALD_OK (0) or a negative
 *   HERALD_E_* code. herald_last_error() then says what failed, where, and what to do.
 *   herald_status_name() names every code.
 * - Which errors close the connection is fixed per code (see herald_status). Once a
 *   connection is closed every later call returns HERALD_E_CLOSED; free the client
 *   with herald_close() and connect again.
 * - Memory: herald_connect() allocates the client and its buffers (a send buffer of
 *   one maximum frame, 81 920 bytes, and a receive buffer, 320 KiB by default). After
 *   that, no function allocates: publishing, receiving, settling, status and ping all
 *   work inside those buffers. Pointers the library hands out (a delivery's key and
 *   payload, a status reply's JSON) point into the receive buffer and stay valid until
 *   the next call that takes the same client, or herald_close().
 * - Pointers the caller passes in are only read during the call; the library keeps
 *   none of them.
 * - Thread-safety: a herald_client is not thread-safe. Use one client from one thread
 *   at a time (or guard it with your own lock). Different clients are independent and
 *   may be used from different threads at once. The free functions that take no client
 *   (herald_status_name, herald_server_code_name, herald_subscription_init,
 *   herald_topic_is_valid, herald_pattern_is_valid) are thread-safe.
 * - Signals: writes use MSG_NOSIGNAL, so a daemon that goes away never raises SIGPIPE.
 *   A call interrupted by a signal (EINTR) carries on; it does not return early.
 * - Validation: every argument is checked against PROTOCOL.md section 11 (limits) and
 *   section 8 (topic and pattern grammar) before anything is sent. A refused argument
 *   returns HERALD_E_ARGUMENT, sends nothing and leaves the connection as it was.
 * - The library does not second-guess the role chosen at connect: a request the role
 *   never allows (publishing on a subscriber connection, say) is sent, and the daemon
 *   answers not_permitted and closes the connection (HERALD_E_SERVER).
 */
#ifndef HERALD_H
#define HERALD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(HERALD_BUILDING_LIBRARY)
#define HERALD_API __attribute__((visibility("default")))
#else
#define HERALD_API
#endif

/* The library's own version (its shared object is libherald.so.HERALD_LIBRARY_VERSION_MAJOR). */
#define HERALD_LIBRARY_VERSION_MAJOR 0
#define HERALD_LIBRARY_VERSION_MINOR 1
#define HERALD_LIBRARY_VERSION_PATCH 0

/* The one protocol version this library speaks (PROTOCOL.md section 5). */
#define HERALD_PROTOCOL_VERSION 1

/* Where `herald serve` puts its socket when run without --data-dir or --socket. */
#define HERALD_DEFAULT_SOCKET_PATH "herald-data/herald.sock"

/* PROTOCOL.md section 11: every limit of version 1. */
#define HERALD_FRAME_BYTES_MAX 81920u             /* one frame, length field included */
#define HERALD_FRAME_HEADER_BYTES 6u              /* length u32, type u8, reserved u8 */
#define HERALD_EVENT_PAYLOAD_BYTES_MAX 65536u     /* payload of one event */
#define HERALD_TOPIC_BYTES_MAX 255u               /* topic, at least 1 byte */
#define HERALD_SOURCE_BYTES_MAX 255u              /* source, may be empty */
#define HERALD_CLIENT_NAME_BYTES_MAX 255u         /* hello client name, may be empty */
#define HERALD_KEY_BYTES_MAX 64u                  /* idempotency key, may be empty */
#define HERALD_BATCH_EVENTS_MAX 256u              /* events per batch, at least 1 */
#define HERALD_SUBSCRIPTION_NAME_BYTES_MAX 64u    /* durable name; empty = live-only */
#define HERALD_SUBSCRIPTION_PATTERNS_MAX 16u      /* patterns per subscription, at least 1 */
#define HERALD_PATTERN_BYTES_MAX 255u             /* one pattern, at least 1 byte */
/* A subscription's patterns in all, each with its length byte (what a durable
   subscription's stored spec holds). */
#define HERALD_SUBSCRIPTION_PATTERN_LIST_BYTES_MAX 332u
#define HERALD_WINDOW_EVENTS_MAX 4096u            /* events in flight, at least 1 */
#define HERALD_NAK_DELAY_MS_MAX 3600000u          /* nak delay */
#define HERALD_ACK_DEADLINE_MS_MAX 3600000u       /* acknowledgement deadline; 0 = daemon default */
#define HERALD_ERROR_MESSAGE_BYTES_MAX 1024u      /* the daemon's error message */
#define HERALD_STATUS_JSON_BYTES_MAX 81914u       /* a status or admin reply */
#define HERALD_ADMIN_REQUEST_BYTES_MAX 4096u      /* an admin request, at least 1 byte */

/* Library limits (not the protocol's). */
#define HERALD_RECEIVE_BUFFER_BYTES_DEFAULT (4u * HERALD_FRAME_BYTES_MAX) /* 320 KiB */
#define HERALD_RECEIVE_BUFFER_BYTES_MIN (2u * HERALD_FRAME_BYTES_MAX)
#define HERALD_RECEIVE_BUFFER_BYTES_MAX (64u * 1024u * 1024u)
#define HERALD_REPLY_TIMEOUT_MS_DEFAULT 10000u

/*
 * Return code of every fallible function. Negative values are errors; which of them
 * close the connection is part of each code's contract.
 */
typedef enum herald_status {
    /* Success. */
    HERALD_OK = 0,
    /* An argument breaks a protocol limit or grammar, or is NULL where it may not be.
     * Nothing was sent; the connection is unchanged. Fix the argument. */
    HERALD_E_ARGUMENT = -1,
    /* The daemon answered `full` (code 5): its log has no room, the publish or the whole
     * batch was NOT stored. The connection stays open: retry later (with the same
     * idempotency key, so a retry can never store it twice). */
    HERALD_E_FULL = -2,
    /* Nothing arrived in time. From herald_receive() this is routine and the connection
     * stays open. From any call that waits for a reply (publish, subscribe, ping,
     * status, admin, connect) or for a write to drain, the connection is closed: a reply
     * arriving late would be taken for the answer to the next request. */
    HERALD_E_TIMEOUT = -3,
    /* The daemon sent an Error whose code closes the connection (every code but `full`
     * and `forbidden`);
     * herald_last_error() has its code (herald_server_code) and its message. The
     * connection is closed. */
    HERALD_E_SERVER = -4,
    /* The daemon broke the protocol: a malformed frame, a length or count that does not
     * agree with the bytes, a frame not valid in this state (PROTOCOL.md section 6,
     * client side). The connection is closed. Nothing of the bad frame was used. */
    HERALD_E_PROTOCOL = -5,
    /* The connection is closed: the daemon hung up, or an earlier error closed it, or
     * herald_goodbye() was called. Connect again. */
    HERALD_E_CLOSED = -6,
    /* A system call failed (socket, connect, poll, send, recv); herald_last_error() has
     * its errno. The connection is closed. */
    HERALD_E_IO = -7,
    /* The call is not possible in the client's state: herald_receive() or a settling
     * call without a subscription. Nothing was sent; the connection is unchanged. */
    HERALD_E_STATE = -8,
    /* While waiting for a reply (a publish on a `both` connection, a ping on a
     * subscriber), the receive buffer filled with deliveries that had not been
     * received yet. The connection is closed. Receive deliveries before such requests,
     * or connect with a larger receive_buffer_bytes, or subscribe with a smaller window. */
    HERALD_E_OVERFLOW = -9,
    /* Memory for the client could not be allocated (herald_connect only). */
    HERALD_E_NOMEM = -10,
    /* The daemon answered `forbidden` (code 13): its access policy does not let this
     * user do that (publish to the topic, subscribe to the patterns or under the name,
     * ask for status). Nothing was done. The connection stays open for what the user
     * may do; after a refused herald_subscribe it is as it was before. From
     * herald_connect: the role is refused, and the client is closed (connect with a role
     * the policy allows). */
    HERALD_E_FORBIDDEN = -11
} herald_status;

/* The daemon's error codes (PROTOCOL.md section 7), as found in herald_error.server_code. */
typedef enum herald_server_code {
    HERALD_SERVER_INVALID = 1,             /* a frame was malformed (closes) */
    HERALD_SERVER_UNEXPECTED = 2,          /* a frame not valid in the connection's state (closes) */
    HERALD_SERVER_UNSUPPORTED_VERSION = 3, /* no protocol version in common (closes) */
    HERALD_SERVER_TOO_LARGE = 4,           /* a frame or field above its limit (closes) */
    HERALD_SERVER_FULL = 5,                /* the log has no room; not stored (does not close) */
    HERALD_SERVER_NAME_IN_USE = 6,         /* the durable name is attached elsewhere (closes) */
    HERALD_SERVER_SHUTTING_DOWN = 7,       /* the daemon is stopping; reconnect later (closes) */
    HERALD_SERVER_INTERNAL = 8,            /* the daemon failed; not carried out (closes) */
    HERALD_SERVER_NOT_PERMITTED = 9,       /* the connection's role does not allow it (closes) */
    HERALD_SERVER_BUSY = 10,               /* the daemon is at its connection limit; try later (closes) */
    HERALD_SERVER_TABLE_FULL = 11,         /* no room for another durable subscription (closes) */
    HERALD_SERVER_TIMED_OUT = 12,          /* no hello, or nothing at all, in the daemon's time limit (closes) */
    HERALD_SERVER_FORBIDDEN = 13           /* the access policy refused it; not carried out (does not close) */
} herald_server_code;

/* The role chosen at connect (PROTOCOL.md section 5); it fixes what the connection may do. */
typedef enum herald_role {
    HERALD_ROLE_PRODUCER = 1,   /* publishes */
    HERALD_ROLE_SUBSCRIBER = 2, /* subscribes and settles deliveries */
    HERALD_ROLE_BOTH = 3,       /* both of the above */
    HERALD_ROLE_CONTROL = 4     /* status and admin requests */
} herald_role;

/* Event severity, syslog numbering (PROTOCOL.md section 4.1): lower is more severe. */
typedef enum herald_severity {
    HERALD_SEVERITY_EMERG = 0,
    HERALD_SEVERITY_ALERT = 1,
    HERALD_SEVERITY_CRIT = 2,
    HERALD_SEVERITY_ERR = 3,
    HERALD_SEVERITY_WARNING = 4,
    HERALD_SEVERITY_NOTICE = 5,
    HERALD_SEVERITY_INFO = 6,
    HERALD_SEVERITY_DEBUG = 7
} herald_severity;

/* An opaque connection to the daemon. Created by herald_connect(), freed by herald_close(). */
typedef struct herald_client herald_client;

/*
 * What the last failing call on a client reported. Read it with herald_last_error();
 * its strings belong to the client and stay valid until the next call that takes the
 * client (or herald_close()). A successful call does not clear it.
 */
typedef struct herald_error {
    /* What the call returned (HERALD_OK if nothing has failed yet). */
    herald_status status;
    /* The daemon's error code (a herald_server_code) when status is HERALD_E_SERVER,
     * HERALD_E_FULL or HERALD_E_FORBIDDEN; 0 otherwise. An unknown code from a newer daemon is kept as is. */
    uint16_t server_code;
    /* errno of the system call that failed, for HERALD_E_IO (and for a failed connect);
     * 0 otherwise. */
    int system_errno;
    /* For people: which operation failed, on which socket, why, and what to do next.
     * NUL-terminated, never NULL (empty if nothing has failed). */
    const char *message;
    /* The daemon's own message from its Error frame, NUL-terminated, never NULL (empty
     * when the error did not come from the daemon). */
    const char *server_message;
} herald_error;

/* Options for herald_connect(). All-zero means every default; pass NULL for the same. */
typedef struct herald_connect_options {
    /* Longest wait, in milliseconds, for the socket connect, for a reply (HelloOk,
     * Stored, Subscribed, Pong, StatusReply) and for a write to drain. 0 = 10 000. */
    uint32_t reply_timeout_ms;
    /* Size of the receive buffer, allocated once at connect. 0 = 327 680 (320 KiB);
     * otherwise HERALD_RECEIVE_BUFFER_BYTES_MIN..=HERALD_RECEIVE_BUFFER_BYTES_MAX.
     * Deliveries that arrive while the client waits for a reply are kept here until
     * herald_receive() returns them (see HERALD_E_OVERFLOW). */
    uint32_t receive_buffer_bytes;
} herald_connect_options;

/*
 * Connect to the daemon's socket and say hello (Hello, then wait for HelloOk).
 *
 * socket_path: NULL for HERALD_DEFAULT_SOCKET_PATH; at most 107 bytes (sun_path).
 * role:        what this connection will do, fixed for its life.
 * client_name: NULL or "" for none; UTF-8, at most 255 bytes. The daemon uses it as the
 *              source of events published with an empty source.
 * options:     NULL for defaults.
 * client_out:  receives the client. On HERALD_OK it is connected. On any other result
 *              but HERALD_E_NOMEM it is a closed client whose herald_last_error() says
 *              why the connect failed; free it with herald_close() in either case. On
 *              HERALD_E_NOMEM it is NULL.
 *
 * Errors: HERALD_E_ARGUMENT (a bad argument or option), HERALD_E_IO (no socket there,
 * permission, nothing listening: the message says which), HERALD_E_SERVER (for example
 * unsupported_version), HERALD_E_FORBIDDEN (the access policy refuses the role),
 * HERALD_E_PROTOCOL, HERALD_E_TIMEOUT, HERALD_E_CLOSED,
 * HERALD_E_NOMEM. Allocates the client and its two buffers; nothing later does.
 */
HERALD_API herald_status herald_connect(const char *socket_path, herald_role role, const char *client_name,
                                        const herald_connect_options *options, herald_client **client_out);

/*
 * Leave politely: send Goodbye, then read until the daemon closes its side (the daemon
 * first answers the frames sent before the Goodbye; anything it still sends is
 * discarded, and unsettled deliveries of a durable subscription are redelivered on
 * its next connection). Waits at most reply_timeout_ms. The client is closed
 * afterwards whatever the result, but not freed: call herald_close().
 * Returns HERALD_OK once the daemon has closed its side, HERALD_E_TIMEOUT if it did not
 * in time, HERALD_E_CLOSED if the connection was already closed, HERALD_E_IO.
 */
HERALD_API herald_status herald_goodbye(herald_client *client);

/*
 * Close the connection (without a Goodbye, if herald_goodbye() was not called) and free
 * the client and its buffers. Every pointer the client handed out becomes invalid.
 * NULL is accepted and does nothing.
 */
HERALD_API void herald_close(herald_client *client);

/* The client's last error (see herald_error for lifetime). Never NULL for a non-NULL
 * client. */
HERALD_API const herald_error *herald_last_error(const herald_client *client);

/* The identifier of a herald_status, such as "HERALD_E_FULL"; "HERALD_E_UNKNOWN" for
 * a value that is not one. Static storage. */
HERALD_API const char *herald_status_name(int status);

/* The protocol's name of a daemon error code, such as "not_permitted" (PROTOCOL.md
 * section 7); "unknown" for a code version 1 does not define. Static storage. */
HERALD_API const char *herald_server_code_name(uint16_t code);

/* Whether the connection is still open (false after any closing error or goodbye). */
HERALD_API bool herald_is_open(const herald_client *client);

/* From the daemon's HelloOk: its node identity, the largest frame it accepts (length
 * field included) and the largest payload it accepts. 0 before a successful connect.
 * The library already honours both limits when it validates. */
HERALD_API uint64_t herald_node_id(const herald_client *client);
HERALD_API uint32_t herald_frame_bytes_max(const herald_client *client);
HERALD_API uint32_t herald_event_payload_bytes_max(const herald_client *client);

/* Whether text is a valid topic (PROTOCOL.md section 8: dot-separated segments of
 * A-Z a-z 0-9 _ -, 1..=255 bytes). NULL is not. */
HERALD_API bool herald_topic_is_valid(const char *topic);

/* Whether text is a valid subscription pattern (section 8: segments, `*` for exactly one
 * segment, a last `>` for one or more; 1..=255 bytes). NULL is not. */
HERALD_API bool herald_pattern_is_valid(const char *pattern);

/* ---------------------------------------------------------------- publishing ---- */

/*
 * One event to publish. The library reads the fields during the call only.
 * Zero-initialise it and set what you need: severity 0 is emerg, so set it.
 */
typedef struct herald_event {
    /* NUL-terminated topic, 1..=255 bytes of the section 8 grammar: "fs.vol1.error". */
    const char *topic;
    /* NUL-terminated UTF-8, at most 255 bytes; NULL or "" means "my client_name". */
    const char *source;
    /* Idempotency key, key_len bytes (0..=64); key_len 0 means none (key may be NULL).
     * A publish repeating a key the daemon remembers for the same source gets the
     * original sequence number back and stores nothing. */
    const void *key;
    size_t key_len;
    /* The event's body, payload_len bytes (0..=65 536, and at most the daemon's
     * event_payload_bytes_max); payload may be NULL when payload_len is 0. */
    const void *payload;
    size_t payload_len;
    /* Application-defined; herald stores and delivers them unchanged. */
    uint16_t flags;
    /* 0..=7, a herald_severity. */
    uint8_t severity;
} herald_event;

/* What the daemon answered a publish (its Stored frame, PROTOCOL.md section 4.3). */
typedef struct herald_stored {
    uint64_t first_seq; /* sequence number of the first event */
    uint64_t last_seq;  /* of the last event, >= first_seq */
    uint16_t count;     /* distinct events stored or found (an in-batch key repeat counts once) */
} herald_stored;

/*
 * Publish one event and wait until the daemon has stored it durably (Stored).
 * seq_out (may be NULL) receives its sequence number. A connection with role producer
 * or both. Encodes into the client's send buffer: no allocation.
 * Errors: HERALD_E_ARGUMENT, HERALD_E_FULL (not stored, still connected; retry),
 * HERALD_E_FORBIDDEN (not this topic; not stored, still connected), HERALD_E_SERVER,
 * HERALD_E_PROTOCOL, HERALD_E_TIMEOUT, HERALD_E_CLOSED, HERALD_E_IO,
 * HERALD_E_OVERFLOW. After any closing error, whether the event was stored is unknown:
 * publish it again on a new connection with the same idempotency key.
 */
HERALD_API herald_status herald_publish(herald_client *client, const herald_event *event, uint64_t *seq_out);

/*
 * Publish 1..=256 events as one batch, stored as a whole or not at all, and wait for
 * the one Stored that answers it. The encoded frame must fit the daemon's
 * frame_bytes_max (81 920 bytes), which bounds the batch more tightly than 256 when
 * payloads are large. stored_out (may be NULL) receives first_seq, last_seq and count;
 * new events get increasing, not necessarily consecutive, numbers in batch order, and
 * the exact number of each is the seq of its delivery. Errors as herald_publish().
 */
HERALD_API herald_status herald_publish_batch(herald_client *client, const herald_event *events, size_t count,
                                              herald_stored *stored_out);

/* --------------------------------------------------------------- subscribing ---- */

/* A subscription request (PROTOCOL.md section 4.2, Subscribe). Fill it with
 * herald_subscription_init() and change what you need. */
typedef struct herald_subscription {
    /* NULL or "" for a live-only subscription (forgotten when the connection ends);
     * otherwise a durable name, 1..=64 bytes of [A-Za-z0-9_.-], resumed by the next
     * subscription with the same name. NUL-terminated. */
    const char *name;
    /* pattern_count NUL-terminated patterns (1..=16), each of the section 8 grammar.
     * An event is delivered if its topic matches any of them. */
    const char *const *patterns;
    size_t pattern_count;
    /* Deliver events with severity <= min_severity; 7 (the default) delivers all. */
    uint8_t min_severity;
    /* Most events in flight (delivered, not settled): 1..=4096; default 64. */
    uint32_t window_events;
    /* Redeliver an event not settled this long after its delivery: 0..=3 600 000 ms;
     * 0 (the default) takes the daemon's --ack-deadline. */
    uint32_t ack_deadline_ms;
    /* Deliveries before an event becomes a dead letter; 0 (the default) takes the
     * daemon's --max-deliveries. */
    uint16_t max_deliveries;
    /* After a crash, leave recovery mode by itself once every replayed event is settled
     * (Subscribe flag bit 0), instead of waiting for herald_recovered(). Default false. */
    bool automatic_recovery;
    /* Join the durable subscription's work-queue group (Subscribe flag bit 1, PROTOCOL.md
     * 10.3): up to 16 connections that all subscribe so share it, each event going to one
     * of them. Needs a name. Default false. (It sits in what was the struct's tail
     * padding, so sizeof is unchanged; a caller that skips herald_subscription_init
     * must zero it.) */
    bool group;
} herald_subscription;

/* The daemon's answer to a subscribe (its Subscribed frame). */
typedef struct herald_subscribed {
    /* The subscription is recovering (mode 1): the daemon replays its unsettled events,
     * flagged redelivered, then sends RecoveryDone; new events follow only after
     * herald_recovered() (or, with automatic_recovery, once the replay is settled). */
    bool recovering;
    /* Events waiting for the subscription when it attached (0 for a live-only one). */
    uint64_t pending_events;
} herald_subscribed;

/* Fill a subscription with the defaults: live-only, no patterns (set at least one),
 * min_severity 7, window_events 64, daemon's deadline and delivery limit, manual
 * recovery. */
HERALD_API void herald_subscription_init(herald_subscription *subscription);

/*
 * Start this connection's one subscription and wait for Subscribed. A connection with
 * role subscriber or both. subscribed_out (may be NULL) receives the mode and the
 * pending count. Deliveries follow; read them with herald_receive().
 * Errors: HERALD_E_ARGUMENT, HERALD_E_FORBIDDEN (the access policy refuses these
 * patterns or this name; still connected, and a subscribe may be tried again),
 * HERALD_E_SERVER (name_in_use, not_permitted, unexpected for a second subscribe),
 * HERALD_E_PROTOCOL, HERALD_E_TIMEOUT, HERALD_E_CLOSED,
 * HERALD_E_IO.
 */
HERALD_API herald_status herald_subscribe(herald_client *client, const herald_subscription *subscription,
                                          herald_subscribed *subscribed_out);

/* What herald_receive() returned. */
typedef enum herald_delivery_kind {
    HERALD_DELIVERY_EVENT = 1,        /* an event (Deliver) */
    HERALD_DELIVERY_RECOVERY_DONE = 2 /* every replayed event has been sent (RecoveryDone) */
} herald_delivery_kind;

/*
 * One delivery, filled by herald_receive(). The caller owns the struct; topic and
 * source are copied into it (NUL-terminated, so they outlive the next call), while key
 * and payload point into the client's receive buffer and are valid only until the next
 * call that takes the client. Copy them to keep them. For RECOVERY_DONE only kind is
 * set.
 */
typedef struct herald_delivery {
    herald_delivery_kind kind;
    uint64_t seq;            /* sequence number; settle the event by it */
    uint64_t timestamp_ns;   /* when the daemon stored it, ns since the Unix epoch */
    bool redelivered;        /* sent before (a missed deadline, nak, reconnect or crash) */
    uint16_t delivery_count; /* sends to this subscription, this one included; >= 1 */
    uint8_t severity;        /* 0..=7 */
    uint16_t flags;          /* the publisher's flags, unchanged */
    char topic[HERALD_TOPIC_BYTES_MAX + 1];
    size_t topic_len;
    char source[HERALD_SOURCE_BYTES_MAX + 1]; /* as stored: the publisher's source or client name */
    size_t source_len;
    const uint8_t *key; /* idempotency key, key_len bytes (NULL when key_len is 0) */
    size_t key_len;
    const uint8_t *payload; /* payload_len bytes (NULL when payload_len is 0) */
    size_t payload_len;
} herald_delivery;

/*
 * Wait up to timeout_ms (negative: forever; 0: only what is already there) for the
 * next delivery or RecoveryDone. Deliveries that arrived while a reply was awaited come
 * first, in the order they arrived. No allocation: the frame is decoded in the receive
 * buffer (see herald_delivery for lifetimes).
 * Errors: HERALD_E_TIMEOUT (nothing yet; still connected), HERALD_E_STATE (no
 * subscription), HERALD_E_SERVER (for example shutting_down), HERALD_E_PROTOCOL,
 * HERALD_E_CLOSED, HERALD_E_IO.
 */
HERALD_API herald_status herald_receive(herald_client *client, herald_delivery *delivery_out, int timeout_ms);

/*
 * Settling (PROTOCOL.md sections 4.2 and 10.2). Each sends one frame that needs no
 * answer and returns once it is written; none waits for the daemon. A seq not in
 * flight is ignored by the daemon (settling is idempotent). All need a subscription
 * (HERALD_E_STATE otherwise); write errors are HERALD_E_TIMEOUT, HERALD_E_CLOSED,
 * HERALD_E_SERVER (an Error the daemon sent before hanging up), HERALD_E_IO.
 */

/* Every delivered event with first_seq <= seq <= last_seq is processed. first_seq must
 * not exceed last_seq (HERALD_E_ARGUMENT). */
HERALD_API herald_status herald_confirm(herald_client *client, uint64_t first_seq, uint64_t last_seq);
/* Redeliver seq no earlier than delay_ms (0..=3 600 000) from now. */
HERALD_API herald_status herald_nak(herald_client *client, uint64_t seq, uint32_t delay_ms);
/* Still processing seq: restart its redelivery deadline. */
HERALD_API herald_status herald_working(herald_client *client, uint64_t seq);
/* seq will never be processed: settled, not redelivered; a dead letter of a durable
 * subscription. */
HERALD_API herald_status herald_reject(herald_client *client, uint64_t seq);
/* This subscriber has finished its own recovery: leave recovery mode. Harmless when
 * not recovering. */
HERALD_API herald_status herald_recovered(herald_client *client);

/* ------------------------------------------------------------ control, ping ---- */

/*
 * Ask for the daemon's status (a control connection) and wait for the StatusReply.
 * *json_out receives NUL-terminated UTF-8 JSON (valid until the next call that takes
 * the client); *json_len_out (may be NULL) its length without the NUL. No JSON parser
 * is involved: the text is the daemon's. Errors as herald_publish() but for FULL.
 */
HERALD_API herald_status herald_request_status(herald_client *client, const char **json_out, size_t *json_len_out);

/*
 * Send an operator's request (PROTOCOL.md section 10.5), a JSON object of 1..=4096 bytes
 * such as {"op":"dead.list"}, on a control connection, and wait for the StatusReply.
 * The reply is returned as for herald_request_status(). A request the daemon cannot
 * carry out is answered {"error": "..."} and the connection stays open; the library
 * does not look inside the JSON (it checks only length and UTF-8).
 */
HERALD_API herald_status herald_admin(herald_client *client, const char *request_json, const char **json_out,
                                      size_t *json_len_out);

/* Send a Ping and wait for its Pong (any role). Errors as herald_request_status(). */
HERALD_API herald_status herald_ping(herald_client *client);

#ifdef __cplusplus
}
#endif

#endif /* HERALD_H */
