/*
 * io.h: the Unix socket under the client: connect, and send and receive with a
 * deadline, through poll(2) on a non-blocking descriptor. No allocation, no frames:
 * bytes only. Internal to libherald.
 */
#ifndef HERALD_IO_H
#define HERALD_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A point in CLOCK_MONOTONIC time, or never. */
typedef struct hio_deadline {
    bool never;
    int64_t at_ms;
} hio_deadline;

/* The deadline timeout_ms from now; negative timeout_ms means never. */
hio_deadline hio_deadline_in(int64_t timeout_ms);

typedef enum hio_result {
    HIO_OK = 0,
    HIO_TIMEOUT, /* the deadline passed first */
    HIO_EOF,     /* receive: the peer closed its side */
    HIO_HANGUP,  /* send: the peer is gone (EPIPE, ECONNRESET) */
    HIO_ERROR    /* a system call failed; *error_out is its errno */
} hio_result;

/*
 * Connect a stream socket to path (which fits sun_path; the caller checked), waiting
 * at most timeout_ms when the daemon's backlog is full. On HIO_OK *fd_out is a
 * non-blocking, close-on-exec descriptor. On HIO_ERROR *error_out is the errno
 * (ENOENT, ECONNREFUSED, EACCES, ...); on HIO_TIMEOUT nothing is open.
 */
hio_result hio_connect_unix(const char *path, uint32_t timeout_ms, int *fd_out, int *error_out);

/* Send all len bytes before the deadline. Never raises SIGPIPE. */
hio_result hio_send_all(int fd, const uint8_t *bytes, size_t len, const hio_deadline *deadline, int *error_out);

/* Receive at least one byte (at most cap) before the deadline; *got_out is how many. */
hio_result hio_receive_some(int fd, uint8_t *buffer, size_t cap, const hio_deadline *deadline, size_t *got_out,
                            int *error_out);

#endif /* HERALD_IO_H */
