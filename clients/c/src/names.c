/*
 * names.c: names of return codes and daemon error codes, and the grammar checks
 * exposed in herald.h.
 */
#include "codec.h"

#include <string.h>

const char *herald_status_name(int status) {
    switch (status) {
    case HERALD_OK: return "HERALD_OK";
    case HERALD_E_ARGUMENT: return "HERALD_E_ARGUMENT";
    case HERALD_E_FULL: return "HERALD_E_FULL";
    case HERALD_E_TIMEOUT: return "HERALD_E_TIMEOUT";
    case HERALD_E_SERVER: return "HERALD_E_SERVER";
    case HERALD_E_PROTOCOL: return "HERALD_E_PROTOCOL";
    case HERALD_E_CLOSED: return "HERALD_E_CLOSED";
    case HERALD_E_IO: return "HERALD_E_IO";
    case HERALD_E_STATE: return "HERALD_E_STATE";
    case HERALD_E_OVERFLOW: return "HERALD_E_OVERFLOW";
    case HERALD_E_NOMEM: return "HERALD_E_NOMEM";
    case HERALD_E_FORBIDDEN: return "HERALD_E_FORBIDDEN";
    default: return "HERALD_E_UNKNOWN";
    }
}

const char *herald_server_code_name(uint16_t code) {
    switch (code) {
    case HERALD_SERVER_INVALID: return "invalid";
    case HERALD_SERVER_UNEXPECTED: return "unexpected";
    case HERALD_SERVER_UNSUPPORTED_VERSION: return "unsupported_version";
    case HERALD_SERVER_TOO_LARGE: return "too_large";
    case HERALD_SERVER_FULL: return "full";
    case HERALD_SERVER_NAME_IN_USE: return "name_in_use";
    case HERALD_SERVER_SHUTTING_DOWN: return "shutting_down";
    case HERALD_SERVER_INTERNAL: return "internal";
    case HERALD_SERVER_NOT_PERMITTED: return "not_permitted";
    case HERALD_SERVER_BUSY: return "busy";
    case HERALD_SERVER_TABLE_FULL: return "table_full";
    case HERALD_SERVER_TIMED_OUT: return "timed_out";
    case HERALD_SERVER_FORBIDDEN: return "forbidden";
    default: return "unknown";
    }
}

bool herald_topic_is_valid(const char *topic) {
    hc_why why;
    return topic != NULL &&
           hc_check_topic((const uint8_t *)topic, strnlen(topic, HERALD_TOPIC_BYTES_MAX + 1), &why);
}

bool herald_pattern_is_valid(const char *pattern) {
    hc_why why;
    return pattern != NULL &&
           hc_check_pattern((const uint8_t *)pattern, strnlen(pattern, HERALD_PATTERN_BYTES_MAX + 1), &why);
}
