/*
 * state.h: the client side of the state machine, PROTOCOL.md section 6 (the table
 * the document calls CLIENT_TABLE): which server frames a client accepts in which
 * state. Internal to libherald; test_codec checks it cell by cell against the table
 * printed in PROTOCOL.md.
 */
#ifndef HERALD_STATE_H
#define HERALD_STATE_H

#include <stdint.h>

/* Client states. The client enters AwaitHelloOk when it sends Hello, AwaitSubscribed
 * when it sends Subscribe from Ready, and Closed when it sends Goodbye. */
typedef enum client_state {
    STATE_AWAIT_HELLO_OK,
    STATE_READY,
    STATE_AWAIT_SUBSCRIBED,
    STATE_SUBSCRIBED,
    STATE_CLOSED,
    STATE_COUNT
} client_state;

/* What a server frame does in a state. */
typedef enum client_action {
    ACTION_CLOSE,         /* "close": the server broke the protocol; the client closes */
    ACTION_OK,            /* "ok": accepted, state unchanged */
    ACTION_TO_READY,      /* "→ Ready" */
    ACTION_TO_SUBSCRIBED, /* "→ Subscribed" */
    ACTION_SEE_CODE       /* "see code": an Error closes unless its code is `full` */
} client_action;

/* The action for a server frame type (0x81..=0x88, as hc_decode lets through). */
client_action hc_client_action(client_state state, uint8_t server_frame_type);

/* The state's name as PROTOCOL.md prints it ("AwaitHelloOk", ...). */
const char *hc_client_state_name(client_state state);

#endif /* HERALD_STATE_H */
