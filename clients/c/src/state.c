/*
 * state.c: PROTOCOL.md section 6, client side, as a table (see state.h).
 */
#include "state.h"

#include "codec.h"

enum { SERVER_FRAME_TYPES = HC_PONG - HC_HELLO_OK + 1 };

/* Row by row and column by column as printed in PROTOCOL.md: HelloOk, Stored, Error,
 * Subscribed, Deliver, RecoveryDone, StatusReply, Pong. */
static const uint8_t CLIENT_TABLE[STATE_COUNT][SERVER_FRAME_TYPES] = {
    [STATE_AWAIT_HELLO_OK] = {ACTION_TO_READY, ACTION_CLOSE, ACTION_SEE_CODE, ACTION_CLOSE, ACTION_CLOSE,
                              ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE},
    [STATE_READY] = {ACTION_CLOSE, ACTION_OK, ACTION_SEE_CODE, ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE, ACTION_OK,
                     ACTION_OK},
    [STATE_AWAIT_SUBSCRIBED] = {ACTION_CLOSE, ACTION_OK, ACTION_SEE_CODE, ACTION_TO_SUBSCRIBED, ACTION_CLOSE,
                                ACTION_CLOSE, ACTION_CLOSE, ACTION_OK},
    [STATE_SUBSCRIBED] = {ACTION_CLOSE, ACTION_OK, ACTION_SEE_CODE, ACTION_CLOSE, ACTION_OK, ACTION_OK,
                          ACTION_CLOSE, ACTION_OK},
    [STATE_CLOSED] = {ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE, ACTION_CLOSE,
                      ACTION_CLOSE, ACTION_CLOSE},
};

static const char *const STATE_NAMES[STATE_COUNT] = {"AwaitHelloOk", "Ready", "AwaitSubscribed", "Subscribed",
                                                     "Closed"};

client_action hc_client_action(client_state state, uint8_t server_frame_type) {
    if (state >= STATE_COUNT || server_frame_type < HC_HELLO_OK || server_frame_type > HC_PONG) {
        return ACTION_CLOSE; /* nothing else reaches here; refuse rather than index out of bounds */
    }
    return (client_action)CLIENT_TABLE[state][server_frame_type - HC_HELLO_OK];
}

const char *hc_client_state_name(client_state state) {
    return state < STATE_COUNT ? STATE_NAMES[state] : "unknown";
}
