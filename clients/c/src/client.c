/*
 * client.c: the connection: its state machine (PROTOCOL.md section 6, client side),
 * its two buffers, and the public API of herald.h.
 *
 * Buffers. The send buffer holds one frame: each request is encoded there and written
 * before the call returns. The receive buffer holds bytes read from the socket, as
 * frames back to back from rx_start to rx_end. While a reply is awaited, deliveries
 * that arrive first are "parked": left where they are, at the front (parked_bytes of
 * them), to be returned by later herald_receive() calls in order; the reply behind
 * them is cut out of the buffer. Nothing is allocated after herald_connect().
 *
 * Requests are synchronous: at most one reply is outstanding, so a reply is matched
 * to its request by type (and by correlation or token, checked too).
 */
#include "codec.h"
#include "io.h"
#include "state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#if defined(__GNUC__)
#define HERALD_PRINTF(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define HERALD_PRINTF(format_index, first_arg)
#endif

/* ---------------------------------------------------------------- client ---- */

enum { SOCKET_PATH_BYTES = sizeof(((struct sockaddr_un *)0)->sun_path), MESSAGE_BYTES = 1536 };

struct herald_client {
    int fd; /* -1 once closed */
    client_state state;
    herald_role role;
    uint32_t reply_timeout_ms;

    /* From HelloOk, capped by the protocol's own limits. */
    uint16_t version;
    uint64_t node_id;
    uint32_t frame_bytes_max;
    uint32_t event_payload_bytes_max;

    uint64_t next_correlation;
    uint64_t next_ping_token;

    uint8_t *tx; /* one frame */
    size_t tx_cap;
    uint8_t *rx; /* frames read, not yet consumed */
    size_t rx_cap;
    size_t rx_start;
    size_t rx_end;
    size_t parked_bytes;  /* validated Deliver/RecoveryDone frames at rx_start */
    size_t parked_frames;

    char socket_path[SOCKET_PATH_BYTES];
    herald_error error;
    char message[MESSAGE_BYTES];
    char server_message[HERALD_ERROR_MESSAGE_BYTES_MAX + 1];
};

/* ----------------------------------------------------------------- errors ---- */

static void close_socket(herald_client *c) {
    if (c->fd >= 0) {
        (void)close(c->fd);
        c->fd = -1;
    }
    c->state = STATE_CLOSED;
}

/* Record an error (and close the connection if close_connection). The message is
 * prefixed with the operation and the socket. Returns status. */
static HERALD_PRINTF(6, 7) herald_status record(herald_client *c, herald_status status, bool close_connection,
                                                uint16_t server_code, const char *operation, const char *format,
                                                ...) {
    int prefix = snprintf(c->message, sizeof c->message, "herald %s on %s: ", operation, c->socket_path);
    if (prefix > 0 && (size_t)prefix < sizeof c->message) {
        va_list args;
        va_start(args, format);
        (void)vsnprintf(c->message + prefix, sizeof c->message - (size_t)prefix, format, args);
        va_end(args);
    }
    c->error.status = status;
    c->error.server_code = server_code;
    c->error.system_errno = 0;
    if (server_code == 0) {
        c->server_message[0] = '\0';
    }
    if (close_connection) {
        close_socket(c);
    }
    return status;
}

static herald_status fail_argument(herald_client *c, const char *operation, const hc_why *why) {
    return record(c, HERALD_E_ARGUMENT, false, 0, operation, "%s; nothing was sent", why->text);
}

static herald_status fail_protocol(herald_client *c, const char *operation, const char *what) {
    return record(c, HERALD_E_PROTOCOL, true, 0, operation,
                  "the daemon broke the protocol: %s; the connection is closed (a daemon of another version, or a "
                  "bug: please report it with the daemon's log)",
                  what);
}

static herald_status fail_system(herald_client *c, const char *operation, const char *what, int error) {
    record(c, HERALD_E_IO, true, 0, operation, "%s failed: %s; the connection is closed", what, strerror(error));
    c->error.system_errno = error;
    return HERALD_E_IO;
}

static herald_status fail_closed_by_daemon(herald_client *c, const char *operation) {
    return record(c, HERALD_E_CLOSED, true, 0, operation,
                  "the daemon closed the connection (it stopped, crashed or dropped this client; see its log); "
                  "connect again");
}

static herald_status fail_not_open(herald_client *c, const char *operation) {
    /* Keep the message of the error that closed it: it says why. */
    if (c->error.status == HERALD_OK || c->error.status == HERALD_E_CLOSED) {
        return record(c, HERALD_E_CLOSED, false, 0, operation, "the connection is closed; connect again");
    }
    char earlier[MESSAGE_BYTES];
    memcpy(earlier, c->message, sizeof earlier);
    earlier[sizeof earlier - 1] = '\0';
    uint16_t code = c->error.server_code;
    int error = c->error.system_errno;
    record(c, HERALD_E_CLOSED, false, code, operation, "the connection is closed, after: %s", earlier);
    c->error.system_errno = error;
    return HERALD_E_CLOSED;
}

/* What to do about an Error code, for people. */
static const char *server_code_advice(uint16_t code, herald_role role) {
    switch (code) {
    case HERALD_SERVER_INVALID:
        return "the daemon found the request invalid (its message says why: a durable subscription's patterns and "
               "min_severity, for one, are its own; `herald subscriptions set` changes them)";
    case HERALD_SERVER_TOO_LARGE:
        return "a frame or field is above the daemon's limit, which libherald checks against PROTOCOL.md: a daemon "
               "of another version, or a bug; please report it";
    case HERALD_SERVER_UNEXPECTED:
        return "the request is not valid at this point of the conversation (a second subscribe?)";
    case HERALD_SERVER_UNSUPPORTED_VERSION:
        return "this daemon does not speak protocol version 1; use a libherald that matches it";
    case HERALD_SERVER_NAME_IN_USE:
        return "another connection has this durable subscription attached; close it or use another name";
    case HERALD_SERVER_SHUTTING_DOWN:
        return "the daemon is stopping; connect again once it is back";
    case HERALD_SERVER_INTERNAL:
        return "the daemon failed and did not carry it out; see its log";
    case HERALD_SERVER_NOT_PERMITTED:
        switch (role) {
        case HERALD_ROLE_PRODUCER: return "the connection's role, producer, only publishes (and pings)";
        case HERALD_ROLE_SUBSCRIBER: return "the connection's role, subscriber, only subscribes and settles";
        case HERALD_ROLE_BOTH: return "the connection's role, both, publishes and subscribes but has no status";
        case HERALD_ROLE_CONTROL: return "the connection's role, control, only asks for status and admin";
        }
        return "the connection's role does not allow it";
    default:
        return "an error code protocol version 1 does not define";
    }
}

/* ----------------------------------------------------------- receive buffer ---- */

/* Removes the frame of len bytes at offset rel from rx_start. Only frames whose values
 * were copied out (Stored, Pong) are ever cut from behind parked deliveries. */
static void consume(herald_client *c, size_t rel, size_t len) {
    if (rel == 0) {
        c->rx_start += len;
    } else {
        uint8_t *at = c->rx + c->rx_start + rel;
        memmove(at, at + len, c->rx_end - (c->rx_start + rel + len));
        c->rx_end -= len;
    }
    if (c->rx_start == c->rx_end) {
        c->rx_start = 0;
        c->rx_end = 0;
    }
}

/* Moves unconsumed bytes to the front to make room at the end. Pointers handed out
 * by an earlier call become invalid here, as herald.h says. */
static void compact(herald_client *c) {
    if (c->rx_start > 0) {
        memmove(c->rx, c->rx + c->rx_start, c->rx_end - c->rx_start);
        c->rx_end -= c->rx_start;
        c->rx_start = 0;
    }
}

/*
 * The next whole, validated frame at offset rel from rx_start, reading from the socket
 * until it is complete or the deadline passes. A bad header is refused as soon as its
 * six bytes are in (section 2). Protocol errors and I/O errors are recorded and close
 * the connection; HERALD_E_TIMEOUT is returned without recording anything (the caller
 * decides what a timeout means).
 */
static herald_status next_frame(herald_client *c, size_t rel, const hio_deadline *deadline, const char *operation,
                                hc_frame *frame, size_t *frame_len) {
    for (;;) {
        size_t available = c->rx_end - c->rx_start - rel;
        const uint8_t *p = c->rx + c->rx_start + rel;
        hc_why why;
        if (available >= HC_LENGTH_FIELD_BYTES) {
            uint32_t body_bytes;
            if (!hc_check_length(p, &body_bytes, &why)) {
                return fail_protocol(c, operation, why.text);
            }
            if (available >= HERALD_FRAME_HEADER_BYTES && !hc_check_type(p[4], p[5], &why)) {
                return fail_protocol(c, operation, why.text);
            }
            size_t total = HERALD_FRAME_HEADER_BYTES + (size_t)body_bytes;
            if (available >= total) {
                if (!hc_decode(p, total, frame, &why)) {
                    return fail_protocol(c, operation, why.text);
                }
                *frame_len = total;
                return HERALD_OK;
            }
        }
        if (c->rx_end == c->rx_cap) {
            compact(c);
            if (c->rx_end == c->rx_cap) {
                /* A frame is at most HERALD_FRAME_BYTES_MAX <= rx_cap bytes, so only
                 * parked deliveries can fill the buffer. */
                return record(c, HERALD_E_OVERFLOW, true, 0, operation,
                              "the receive buffer (%zu bytes) filled with %zu deliveries while waiting for the "
                              "reply; the connection is closed. Receive deliveries before such requests, connect "
                              "with a larger receive_buffer_bytes or subscribe with a smaller window",
                              c->rx_cap, c->parked_frames);
            }
        }
        size_t got = 0;
        int error = 0;
        hio_result r = hio_receive_some(c->fd, c->rx + c->rx_end, c->rx_cap - c->rx_end, deadline, &got, &error);
        switch (r) {
        case HIO_OK:
            c->rx_end += got;
            break;
        case HIO_TIMEOUT:
            return HERALD_E_TIMEOUT;
        case HIO_EOF:
            if (available > 0) {
                return fail_protocol(c, operation, "the daemon closed the connection in the middle of a frame");
            }
            return fail_closed_by_daemon(c, operation);
        case HIO_HANGUP:
        case HIO_ERROR:
            return fail_system(c, operation, "recv", error);
        }
    }
}

/* Copies an Error's message out of the receive buffer, NUL-terminated. */
static void keep_server_message(herald_client *c, const hc_frame *f) {
    size_t len = f->u.error.message_len; /* <= 1024, checked by hc_decode */
    memcpy(c->server_message, f->u.error.message, len);
    c->server_message[len] = '\0';
}

/*
 * An Error frame (table action "see code"). `full` answers the outstanding publish,
 * if it has its correlation; `forbidden` answers the outstanding request (a publish by
 * its correlation) and, for a subscribe, leaves the connection as it was before it;
 * every other code closes the connection.
 */
static herald_status on_error(herald_client *c, const hc_frame *f, size_t rel, size_t len, const char *operation,
                              bool publish_outstanding, uint64_t correlation) {
    uint16_t code = f->u.error.code;
    keep_server_message(c, f);
    if (code == HERALD_SERVER_FORBIDDEN) {
        if (publish_outstanding && f->u.error.correlation != correlation) {
            return fail_protocol(c, operation, "it answered `forbidden` with another publish's correlation");
        }
        consume(c, rel, len);
        if (c->state == STATE_AWAIT_HELLO_OK) {
            /* A connect whose role is refused returns a closed client, like every failed connect. */
            return record(c, HERALD_E_FORBIDDEN, true, code, operation,
                          "the daemon's access policy refuses this role to this user (\"%s\"); connect with a role "
                          "it allows",
                          c->server_message);
        }
        if (c->state == STATE_AWAIT_SUBSCRIBED && f->u.error.correlation == 0) {
            c->state = STATE_READY; /* section 6: a refused Subscribe leaves things as before */
        }
        return record(c, HERALD_E_FORBIDDEN, false, code, operation,
                      "the daemon's access policy refused it (\"%s\"): nothing was done; the connection stays open "
                      "for what this user may do",
                      c->server_message);
    }
    if (!hc_error_code_closes(code)) {
        if (!publish_outstanding || f->u.error.correlation != correlation) {
            return fail_protocol(c, operation, "it answered `full` to something that was not a publish");
        }
        consume(c, rel, len);
        return record(c, HERALD_E_FULL, false, code, operation,
                      "the daemon's log is full (\"%s\"): NOT stored. Retry later with the same idempotency key; "
                      "`herald status` shows which subscription holds the ring",
                      c->server_message);
    }
    return record(c, HERALD_E_SERVER, true, code, operation, "the daemon refused it: %s (%u): \"%s\"; %s; the connection is closed",
                  herald_server_code_name(code), code, c->server_message, server_code_advice(code, c->role));
}

/*
 * Wait for the reply of type `want` to the one outstanding request. Deliveries that
 * come first are parked. On HERALD_OK *reply holds it (already consumed: pointers in
 * it stay valid until the next call); the table's state change is applied. A timeout
 * closes the connection: the late reply would be taken for the next request's.
 */
static herald_status await_reply(herald_client *c, uint8_t want, uint64_t correlation, const char *operation,
                                 hc_frame *reply) {
    hio_deadline deadline = hio_deadline_in(c->reply_timeout_ms);
    for (;;) {
        size_t len = 0;
        herald_status s = next_frame(c, c->parked_bytes, &deadline, operation, reply, &len);
        if (s == HERALD_E_TIMEOUT) {
            return record(c, HERALD_E_TIMEOUT, true, 0, operation,
                          "no %s from the daemon within %u ms; the connection is closed (a late reply would be taken "
                          "for the next). Connect again%s",
                          hc_frame_type_name(want), c->reply_timeout_ms,
                          want == HC_STORED ? " and publish again with the same idempotency key" : "");
        }
        if (s != HERALD_OK) {
            return s;
        }
        char what[160];
        switch (hc_client_action(c->state, reply->type)) {
        case ACTION_CLOSE:
            (void)snprintf(what, sizeof what, "it sent %s while the connection was %s (section 6)",
                           hc_frame_type_name(reply->type), hc_client_state_name(c->state));
            return fail_protocol(c, operation, what);
        case ACTION_SEE_CODE:
            return on_error(c, reply, c->parked_bytes, len, operation, want == HC_STORED, correlation);
        case ACTION_OK:
        case ACTION_TO_READY:
        case ACTION_TO_SUBSCRIBED:
            break;
        }
        if (reply->type == HC_DELIVER || reply->type == HC_RECOVERY_DONE) {
            c->parked_bytes += len;
            c->parked_frames++;
            continue;
        }
        if (reply->type != want) {
            (void)snprintf(what, sizeof what, "it sent %s while libherald waited for %s",
                           hc_frame_type_name(reply->type), hc_frame_type_name(want));
            return fail_protocol(c, operation, what);
        }
        client_action action = hc_client_action(c->state, reply->type);
        if (action == ACTION_TO_READY) {
            c->state = STATE_READY;
        } else if (action == ACTION_TO_SUBSCRIBED) {
            c->state = STATE_SUBSCRIBED;
        }
        /* Deliveries are parked only in Subscribed, where the table admits no
         * StatusReply: a reply with pointers into the buffer is never cut out. */
        if (c->parked_bytes > 0 && reply->type != HC_STORED && reply->type != HC_PONG) {
            return fail_protocol(c, operation, "a reply with deliveries ahead of it that libherald cannot keep");
        }
        consume(c, c->parked_bytes, len);
        return HERALD_OK;
    }
}

/* ------------------------------------------------------------------ sending ---- */

/* Having lost the connection while writing, look for the Error the daemon may have
 * sent before it hung up: that says why. */
static herald_status explain_hangup(herald_client *c, const char *operation) {
    hio_deadline now = hio_deadline_in(0);
    size_t rel = c->parked_bytes;
    for (;;) {
        hc_frame f;
        size_t len = 0;
        herald_status s = next_frame(c, rel, &now, operation, &f, &len);
        if (s == HERALD_E_TIMEOUT) {
            return fail_closed_by_daemon(c, operation);
        }
        if (s != HERALD_OK) {
            return s;
        }
        if (f.type == HC_ERROR) {
            return on_error(c, &f, rel, len, operation, false, 0);
        }
        rel += len;
    }
}

/* Write the frame of len bytes from the send buffer. */
static herald_status send_frame(herald_client *c, size_t len, const char *operation) {
    hio_deadline deadline = hio_deadline_in(c->reply_timeout_ms);
    int error = 0;
    switch (hio_send_all(c->fd, c->tx, len, &deadline, &error)) {
    case HIO_OK:
        return HERALD_OK;
    case HIO_TIMEOUT:
        return record(c, HERALD_E_TIMEOUT, true, 0, operation,
                      "could not write within %u ms: the daemon is not reading this connection; the connection is "
                      "closed",
                      c->reply_timeout_ms);
    case HIO_HANGUP:
    case HIO_EOF:
        return explain_hangup(c, operation);
    case HIO_ERROR:
        break;
    }
    return fail_system(c, operation, "send", error);
}

/* The client may be used for operation: not NULL, still open. */
static herald_status usable(herald_client *c, const char *operation) {
    if (c->fd < 0) {
        return fail_not_open(c, operation);
    }
    return HERALD_OK;
}

static herald_status need_subscription(herald_client *c, const char *operation) {
    herald_status s = usable(c, operation);
    if (s == HERALD_OK && c->state != STATE_SUBSCRIBED) {
        return record(c, HERALD_E_STATE, false, 0, operation,
                      "this connection has no subscription; call herald_subscribe first");
    }
    return s;
}

/* ---------------------------------------------------------------- connect ---- */

/* Send the Hello already encoded in the send buffer (hello_len bytes), await HelloOk. */
static herald_status say_hello(herald_client *c, size_t hello_len) {
    const char *operation = "connect";
    size_t len = hello_len;
    c->state = STATE_AWAIT_HELLO_OK;
    herald_status s = send_frame(c, len, operation);
    hc_frame reply;
    if (s == HERALD_OK) {
        s = await_reply(c, HC_HELLO_OK, 0, operation, &reply);
    }
    if (s != HERALD_OK) {
        return s;
    }
    if (reply.u.hello_ok.version != HERALD_PROTOCOL_VERSION) {
        char what[96];
        (void)snprintf(what, sizeof what, "HelloOk chose version %u, outside the range 1..=1 the hello offered",
                       reply.u.hello_ok.version);
        return fail_protocol(c, operation, what);
    }
    c->version = reply.u.hello_ok.version;
    c->node_id = reply.u.hello_ok.node_id;
    c->frame_bytes_max = reply.u.hello_ok.frame_bytes_max < HERALD_FRAME_BYTES_MAX ? reply.u.hello_ok.frame_bytes_max
                                                                                  : HERALD_FRAME_BYTES_MAX;
    c->event_payload_bytes_max = reply.u.hello_ok.event_payload_bytes_max < HERALD_EVENT_PAYLOAD_BYTES_MAX
                                     ? reply.u.hello_ok.event_payload_bytes_max
                                     : HERALD_EVENT_PAYLOAD_BYTES_MAX;
    return HERALD_OK;
}

static herald_status connect_socket(herald_client *c) {
    int fd = -1, error = 0;
    switch (hio_connect_unix(c->socket_path, c->reply_timeout_ms, &fd, &error)) {
    case HIO_OK:
        c->fd = fd;
        return HERALD_OK;
    case HIO_TIMEOUT:
        return record(c, HERALD_E_TIMEOUT, true, 0, "connect",
                      "the daemon did not accept the connection within %u ms (its backlog is full)",
                      c->reply_timeout_ms);
    default:
        break;
    }
    const char *advice;
    switch (error) {
    case ENOENT:
        advice = "no socket there: is the daemon running? (`herald serve --data-dir DIR` listens on DIR/herald.sock)";
        break;
    case ECONNREFUSED:
        advice = "nothing listens on it: the daemon is not running (the socket file is left from an earlier run)";
        break;
    case EACCES:
    case EPERM:
        advice = "permission denied: the socket is mode 600 by default; run as the daemon's user, or let this user "
                 "in with the daemon's socket_mode and socket_group (and [[access]] rules for what it may do)";
        break;
    case ENOTSOCK:
        advice = "the path is not a socket";
        break;
    default:
        advice = "the socket could not be connected";
        break;
    }
    record(c, HERALD_E_IO, true, 0, "connect", "%s (%s)", advice, strerror(error));
    c->error.system_errno = error;
    return HERALD_E_IO;
}

herald_status herald_connect(const char *socket_path, herald_role role, const char *client_name,
                             const herald_connect_options *options, herald_client **client_out) {
    if (client_out == NULL) {
        return HERALD_E_ARGUMENT;
    }
    *client_out = NULL;
    herald_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return HERALD_E_NOMEM;
    }
    c->fd = -1;
    c->state = STATE_CLOSED;
    c->role = role;
    c->next_correlation = 1;
    c->next_ping_token = 1;
    c->error.status = HERALD_OK;
    c->error.message = c->message;
    c->error.server_message = c->server_message;
    *client_out = c;

    const char *path = socket_path == NULL ? HERALD_DEFAULT_SOCKET_PATH : socket_path;
    size_t path_len = strnlen(path, SOCKET_PATH_BYTES);
    memcpy(c->socket_path, path, path_len < SOCKET_PATH_BYTES ? path_len : SOCKET_PATH_BYTES - 1);
    if (path_len >= SOCKET_PATH_BYTES) {
        memcpy(c->socket_path + SOCKET_PATH_BYTES - 4, "...", 4);
        return record(c, HERALD_E_ARGUMENT, true, 0, "connect",
                      "the socket path is longer than %zu bytes, the most a Unix socket address holds; use a shorter "
                      "path (a relative one, or a symbolic link)",
                      (size_t)SOCKET_PATH_BYTES - 1);
    }
    if (path_len == 0) {
        return record(c, HERALD_E_ARGUMENT, true, 0, "connect", "the socket path is empty");
    }
    if (role < HERALD_ROLE_PRODUCER || role > HERALD_ROLE_CONTROL) {
        return record(c, HERALD_E_ARGUMENT, true, 0, "connect",
                      "role %d is not one of HERALD_ROLE_PRODUCER, _SUBSCRIBER, _BOTH, _CONTROL", (int)role);
    }
    uint32_t timeout = options == NULL ? 0 : options->reply_timeout_ms;
    uint32_t rx_bytes = options == NULL ? 0 : options->receive_buffer_bytes;
    c->reply_timeout_ms = timeout == 0 ? HERALD_REPLY_TIMEOUT_MS_DEFAULT : timeout;
    c->rx_cap = rx_bytes == 0 ? HERALD_RECEIVE_BUFFER_BYTES_DEFAULT : rx_bytes;
    if (c->rx_cap < HERALD_RECEIVE_BUFFER_BYTES_MIN || c->rx_cap > HERALD_RECEIVE_BUFFER_BYTES_MAX) {
        return record(c, HERALD_E_ARGUMENT, true, 0, "connect",
                      "receive_buffer_bytes %zu is outside %u..=%u (0 takes the default, %u)", c->rx_cap,
                      HERALD_RECEIVE_BUFFER_BYTES_MIN, HERALD_RECEIVE_BUFFER_BYTES_MAX,
                      HERALD_RECEIVE_BUFFER_BYTES_DEFAULT);
    }
    c->tx_cap = HERALD_FRAME_BYTES_MAX;
    c->tx = malloc(c->tx_cap);
    c->rx = malloc(c->rx_cap);
    if (c->tx == NULL || c->rx == NULL) {
        herald_close(c);
        *client_out = NULL;
        return HERALD_E_NOMEM;
    }
    /* The Hello is encoded first, so that a bad name is refused before connecting. */
    const char *name = client_name == NULL ? "" : client_name;
    hc_why why;
    size_t hello_len = hc_encode_hello(c->tx, c->tx_cap, HERALD_PROTOCOL_VERSION, HERALD_PROTOCOL_VERSION,
                                       (uint8_t)role, (const uint8_t *)name,
                                       strnlen(name, HERALD_CLIENT_NAME_BYTES_MAX + 1), &why);
    if (hello_len == 0) {
        return record(c, HERALD_E_ARGUMENT, true, 0, "connect", "%s; nothing was sent", why.text);
    }
    herald_status s = connect_socket(c);
    if (s != HERALD_OK) {
        return s;
    }
    return say_hello(c, hello_len);
}

herald_status herald_goodbye(herald_client *c) {
    const char *operation = "goodbye";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    size_t len = hc_encode_empty(c->tx, c->tx_cap, HC_GOODBYE, &why);
    c->state = STATE_CLOSED; /* section 6: the client is Closed once it sends Goodbye */
    s = send_frame(c, len, operation);
    if (s != HERALD_OK) {
        return s;
    }
    /* The daemon answers what came before the Goodbye, then closes: read until it has,
     * discarding (nothing is outstanding: requests are synchronous). */
    hio_deadline deadline = hio_deadline_in(c->reply_timeout_ms);
    for (;;) {
        size_t got = 0;
        int error = 0;
        hio_result r = hio_receive_some(c->fd, c->rx, c->rx_cap, &deadline, &got, &error);
        if (r == HIO_OK) {
            continue;
        }
        c->rx_start = c->rx_end = c->parked_bytes = c->parked_frames = 0;
        if (r == HIO_EOF) {
            close_socket(c);
            return HERALD_OK;
        }
        if (r == HIO_TIMEOUT) {
            return record(c, HERALD_E_TIMEOUT, true, 0, operation,
                          "the daemon did not close the connection within %u ms of the Goodbye; closed it here",
                          c->reply_timeout_ms);
        }
        return fail_system(c, operation, "recv", error);
    }
}

void herald_close(herald_client *c) {
    if (c == NULL) {
        return;
    }
    close_socket(c);
    free(c->tx);
    free(c->rx);
    free(c);
}

/* -------------------------------------------------------------- accessors ---- */

const herald_error *herald_last_error(const herald_client *c) {
    return c == NULL ? NULL : &c->error;
}

bool herald_is_open(const herald_client *c) {
    return c != NULL && c->fd >= 0;
}

uint64_t herald_node_id(const herald_client *c) {
    return c == NULL ? 0 : c->node_id;
}

uint32_t herald_frame_bytes_max(const herald_client *c) {
    return c == NULL ? 0 : c->frame_bytes_max;
}

uint32_t herald_event_payload_bytes_max(const herald_client *c) {
    return c == NULL ? 0 : c->event_payload_bytes_max;
}

/* ------------------------------------------------------------- publishing ---- */

static herald_status take_stored(herald_client *c, const char *operation, uint64_t correlation, size_t batch_count,
                                 herald_stored *stored_out) {
    hc_frame reply;
    herald_status s = await_reply(c, HC_STORED, correlation, operation, &reply);
    if (s != HERALD_OK) {
        return s;
    }
    if (reply.u.stored.correlation != correlation) {
        return fail_protocol(c, operation, "Stored carries another request's correlation");
    }
    if (reply.u.stored.count > batch_count) {
        return fail_protocol(c, operation, "Stored counts more events than were published");
    }
    if (stored_out != NULL) {
        stored_out->first_seq = reply.u.stored.first_seq;
        stored_out->last_seq = reply.u.stored.last_seq;
        stored_out->count = reply.u.stored.count;
    }
    return HERALD_OK;
}

herald_status herald_publish(herald_client *c, const herald_event *event, uint64_t *seq_out) {
    const char *operation = "publish";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    hc_event_view view;
    if (!hc_event_from_api(event, c->event_payload_bytes_max, &view, &why)) {
        return fail_argument(c, operation, &why);
    }
    uint64_t correlation = c->next_correlation;
    size_t len = hc_encode_publish(c->tx, c->tx_cap, c->frame_bytes_max, correlation, &view, &why);
    if (len == 0) {
        return fail_argument(c, operation, &why);
    }
    c->next_correlation++;
    s = send_frame(c, len, operation);
    herald_stored stored;
    if (s == HERALD_OK) {
        s = take_stored(c, operation, correlation, 1, &stored);
    }
    if (s == HERALD_OK && seq_out != NULL) {
        *seq_out = stored.first_seq;
    }
    return s;
}

herald_status herald_publish_batch(herald_client *c, const herald_event *events, size_t count,
                                   herald_stored *stored_out) {
    const char *operation = "publish_batch";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    uint64_t correlation = c->next_correlation;
    size_t len = hc_encode_publish_batch(c->tx, c->tx_cap, c->frame_bytes_max, correlation, events, count,
                                         c->event_payload_bytes_max, &why);
    if (len == 0) {
        return fail_argument(c, operation, &why);
    }
    c->next_correlation++;
    s = send_frame(c, len, operation);
    if (s == HERALD_OK) {
        s = take_stored(c, operation, correlation, count, stored_out);
    }
    return s;
}

/* ------------------------------------------------------------ subscribing ---- */

void herald_subscription_init(herald_subscription *s) {
    if (s == NULL) {
        return;
    }
    memset(s, 0, sizeof *s);
    s->name = "";
    s->min_severity = HERALD_SEVERITY_DEBUG;
    s->window_events = 64;
}

herald_status herald_subscribe(herald_client *c, const herald_subscription *subscription,
                               herald_subscribed *subscribed_out) {
    const char *operation = "subscribe";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    size_t len = hc_encode_subscribe(c->tx, c->tx_cap, c->frame_bytes_max, subscription, &why);
    if (len == 0) {
        return fail_argument(c, operation, &why);
    }
    if (c->state == STATE_READY) {
        c->state = STATE_AWAIT_SUBSCRIBED; /* section 6: on sending Subscribe from Ready */
    }
    s = send_frame(c, len, operation);
    hc_frame reply;
    if (s == HERALD_OK) {
        s = await_reply(c, HC_SUBSCRIBED, 0, operation, &reply);
    }
    if (s == HERALD_OK && subscribed_out != NULL) {
        subscribed_out->recovering = reply.u.subscribed.mode == 1;
        subscribed_out->pending_events = reply.u.subscribed.pending_events;
    }
    return s;
}

static void fill_delivery(herald_delivery *d, const hc_frame *f) {
    if (f->type == HC_RECOVERY_DONE) {
        memset(d, 0, sizeof *d);
        d->kind = HERALD_DELIVERY_RECOVERY_DONE;
        return;
    }
    const hc_event_view *e = &f->u.deliver.event;
    d->kind = HERALD_DELIVERY_EVENT;
    d->seq = f->u.deliver.seq;
    d->timestamp_ns = f->u.deliver.timestamp_ns;
    d->redelivered = (f->u.deliver.delivery_flags & HC_DELIVERY_REDELIVERED) != 0;
    d->delivery_count = f->u.deliver.delivery_count;
    d->severity = e->severity;
    d->flags = e->flags;
    memcpy(d->topic, e->topic, e->topic_len);
    d->topic[e->topic_len] = '\0';
    d->topic_len = e->topic_len;
    if (e->source_len > 0) {
        memcpy(d->source, e->source, e->source_len);
    }
    d->source[e->source_len] = '\0';
    d->source_len = e->source_len;
    d->key = e->key_len > 0 ? e->key : NULL;
    d->key_len = e->key_len;
    d->payload = e->payload_len > 0 ? e->payload : NULL;
    d->payload_len = e->payload_len;
}

herald_status herald_receive(herald_client *c, herald_delivery *delivery_out, int timeout_ms) {
    const char *operation = "receive";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    if (delivery_out == NULL) {
        hc_why why = {"the delivery to fill is NULL"};
        return fail_argument(c, operation, &why);
    }
    herald_status s = need_subscription(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hio_deadline deadline = hio_deadline_in(timeout_ms);
    hc_frame f;
    size_t len = 0;
    /* Parked deliveries are at the front: they come first, already complete. */
    s = next_frame(c, 0, &deadline, operation, &f, &len);
    if (s == HERALD_E_TIMEOUT) {
        return record(c, HERALD_E_TIMEOUT, false, 0, operation, "no delivery within %d ms", timeout_ms);
    }
    if (s != HERALD_OK) {
        return s;
    }
    char what[128];
    switch (hc_client_action(c->state, f.type)) {
    case ACTION_CLOSE:
        (void)snprintf(what, sizeof what, "it sent %s while the connection was %s (section 6)",
                       hc_frame_type_name(f.type), hc_client_state_name(c->state));
        return fail_protocol(c, operation, what);
    case ACTION_SEE_CODE:
        return on_error(c, &f, 0, len, operation, false, 0);
    default:
        break;
    }
    if (f.type != HC_DELIVER && f.type != HC_RECOVERY_DONE) {
        (void)snprintf(what, sizeof what, "it sent %s, answering no request", hc_frame_type_name(f.type));
        return fail_protocol(c, operation, what);
    }
    if (c->parked_frames > 0) {
        c->parked_frames--;
        c->parked_bytes -= len;
    }
    /* The frame's bytes stay where they are until the next call reads or compacts:
     * the payload and key pointers rely on that. */
    consume(c, 0, len);
    fill_delivery(delivery_out, &f);
    return HERALD_OK;
}

/* Encode and send one settling frame (no answer). */
static herald_status settle(herald_client *c, const char *operation, size_t len, const hc_why *why) {
    if (len == 0) {
        return fail_argument(c, operation, why);
    }
    return send_frame(c, len, operation);
}

herald_status herald_confirm(herald_client *c, uint64_t first_seq, uint64_t last_seq) {
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = need_subscription(c, "confirm");
    hc_why why;
    return s != HERALD_OK ? s : settle(c, "confirm", hc_encode_confirm(c->tx, c->tx_cap, first_seq, last_seq, &why), &why);
}

herald_status herald_nak(herald_client *c, uint64_t seq, uint32_t delay_ms) {
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = need_subscription(c, "nak");
    hc_why why;
    return s != HERALD_OK ? s : settle(c, "nak", hc_encode_nak(c->tx, c->tx_cap, seq, delay_ms, &why), &why);
}

herald_status herald_working(herald_client *c, uint64_t seq) {
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = need_subscription(c, "working");
    hc_why why;
    return s != HERALD_OK ? s : settle(c, "working", hc_encode_u64_body(c->tx, c->tx_cap, HC_WORKING, seq, &why), &why);
}

herald_status herald_reject(herald_client *c, uint64_t seq) {
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = need_subscription(c, "reject");
    hc_why why;
    return s != HERALD_OK ? s : settle(c, "reject", hc_encode_u64_body(c->tx, c->tx_cap, HC_REJECT, seq, &why), &why);
}

herald_status herald_recovered(herald_client *c) {
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = need_subscription(c, "recovered");
    hc_why why;
    return s != HERALD_OK ? s : settle(c, "recovered", hc_encode_empty(c->tx, c->tx_cap, HC_RECOVERED, &why), &why);
}

/* ---------------------------------------------------------- control, ping ---- */

/* Send the frame in the send buffer and return the StatusReply's JSON, NUL-terminated
 * in place: the body moves one byte down over the header's reserved byte, which frees
 * the frame's last byte for the NUL. */
static herald_status status_exchange(herald_client *c, size_t len, const char *operation, const char **json_out,
                                     size_t *json_len_out) {
    herald_status s = send_frame(c, len, operation);
    hc_frame reply;
    if (s == HERALD_OK) {
        s = await_reply(c, HC_STATUS_REPLY, 0, operation, &reply);
    }
    if (s != HERALD_OK) {
        return s;
    }
    uint8_t *body = (uint8_t *)(uintptr_t)reply.u.status_reply.json;
    size_t json_len = reply.u.status_reply.json_len;
    uint8_t *text = body - 1; /* the reserved byte, checked and no longer needed */
    memmove(text, body, json_len);
    text[json_len] = '\0'; /* the frame's last byte, now free */
    *json_out = (const char *)text;
    if (json_len_out != NULL) {
        *json_len_out = json_len;
    }
    return HERALD_OK;
}

herald_status herald_request_status(herald_client *c, const char **json_out, size_t *json_len_out) {
    const char *operation = "status";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    if (json_out == NULL) {
        hc_why why = {"json_out is NULL"};
        return fail_argument(c, operation, &why);
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    size_t len = hc_encode_empty(c->tx, c->tx_cap, HC_STATUS, &why);
    return status_exchange(c, len, operation, json_out, json_len_out);
}

herald_status herald_admin(herald_client *c, const char *request_json, const char **json_out, size_t *json_len_out) {
    const char *operation = "admin";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    hc_why why;
    if (request_json == NULL || json_out == NULL) {
        (void)snprintf(why.text, sizeof why.text, "%s is NULL", request_json == NULL ? "request_json" : "json_out");
        return fail_argument(c, operation, &why);
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    size_t request_len = strnlen(request_json, HERALD_ADMIN_REQUEST_BYTES_MAX + 1);
    size_t len = hc_encode_admin(c->tx, c->tx_cap, c->frame_bytes_max, (const uint8_t *)request_json, request_len, &why);
    if (len == 0) {
        return fail_argument(c, operation, &why);
    }
    return status_exchange(c, len, operation, json_out, json_len_out);
}

herald_status herald_ping(herald_client *c) {
    const char *operation = "ping";
    if (c == NULL) {
        return HERALD_E_ARGUMENT;
    }
    herald_status s = usable(c, operation);
    if (s != HERALD_OK) {
        return s;
    }
    hc_why why;
    uint64_t token = c->next_ping_token++;
    size_t len = hc_encode_u64_body(c->tx, c->tx_cap, HC_PING, token, &why);
    s = send_frame(c, len, operation);
    hc_frame reply;
    if (s == HERALD_OK) {
        s = await_reply(c, HC_PONG, 0, operation, &reply);
    }
    if (s == HERALD_OK && reply.u.pong.token != token) {
        return fail_protocol(c, operation, "Pong echoes another token than the Ping's");
    }
    return s;
}
