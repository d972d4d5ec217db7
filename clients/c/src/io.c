/*
 * io.c: connect, send and receive with deadlines (see io.h).
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#if defined(MSG_NOSIGNAL)
#define HIO_SEND_FLAGS MSG_NOSIGNAL
#else
#define HIO_SEND_FLAGS 0 /* SO_NOSIGPIPE is set on the socket instead (BSDs, macOS) */
#endif

static int64_t now_ms(void) {
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer; a failure would leave ts
     * zeroed, which only makes deadlines come early. */
    memset(&ts, 0, sizeof ts);
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

hio_deadline hio_deadline_in(int64_t timeout_ms) {
    hio_deadline d;
    d.never = timeout_ms < 0;
    d.at_ms = d.never ? 0 : now_ms() + timeout_ms;
    return d;
}

/* Milliseconds left for poll(2): -1 for never, else 0..=INT_MAX. */
static int remaining_ms(const hio_deadline *d) {
    if (d->never) {
        return -1;
    }
    int64_t left = d->at_ms - now_ms();
    if (left <= 0) {
        return 0;
    }
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Wait until fd is ready for events; HIO_OK, HIO_TIMEOUT or HIO_ERROR. */
static hio_result wait_for(int fd, short events, const hio_deadline *d, int *error_out) {
    for (;;) {
        struct pollfd p;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        int timeout = remaining_ms(d);
        int ready = poll(&p, 1, timeout);
        if (ready > 0) {
            /* POLLHUP and POLLERR are "ready" too: the next call reports what happened. */
            return HIO_OK;
        }
        if (ready == 0) {
            if (timeout == 0) {
                return HIO_TIMEOUT;
            }
            continue; /* poll may wake a little early; recompute what is left */
        }
        if (errno != EINTR) {
            *error_out = errno;
            return HIO_ERROR;
        }
    }
}

hio_result hio_connect_unix(const char *path, uint32_t timeout_ms, int *fd_out, int *error_out) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t path_len = strlen(path);
    if (path_len >= sizeof address.sun_path) {
        *error_out = ENAMETOOLONG;
        return HIO_ERROR;
    }
    memcpy(address.sun_path, path, path_len + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        *error_out = errno;
        return HIO_ERROR;
    }
    /* A blocking connect waits for room in the daemon's backlog at most SO_SNDTIMEO;
     * the socket becomes non-blocking only afterwards, for poll(2). */
    struct timeval tv;
    tv.tv_sec = (time_t)(timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)((timeout_ms % 1000) * 1000);
    int option_failed = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    option_failed = option_failed || setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    if (option_failed != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        *error_out = errno;
        (void)close(fd);
        return HIO_ERROR;
    }
    int connected;
    do {
        connected = connect(fd, (const struct sockaddr *)&address, (socklen_t)sizeof address);
    } while (connected != 0 && errno == EINTR);
    if (connected != 0) {
        int error = errno;
        (void)close(fd);
        if (error == EAGAIN || error == EWOULDBLOCK || error == ETIMEDOUT || error == EINPROGRESS) {
            return HIO_TIMEOUT;
        }
        *error_out = error;
        return HIO_ERROR;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        *error_out = errno;
        (void)close(fd);
        return HIO_ERROR;
    }
    *fd_out = fd;
    return HIO_OK;
}

hio_result hio_send_all(int fd, const uint8_t *bytes, size_t len, const hio_deadline *deadline, int *error_out) {
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, bytes + sent, len - sent, HIO_SEND_FLAGS);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            hio_result waited = wait_for(fd, POLLOUT, deadline, error_out);
            if (waited != HIO_OK) {
                return waited;
            }
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return HIO_HANGUP;
        }
        *error_out = n < 0 ? errno : EIO;
        return HIO_ERROR;
    }
    return HIO_OK;
}

hio_result hio_receive_some(int fd, uint8_t *buffer, size_t cap, const hio_deadline *deadline, size_t *got_out,
                            int *error_out) {
    for (;;) {
        ssize_t n = recv(fd, buffer, cap, 0);
        if (n > 0) {
            *got_out = (size_t)n;
            return HIO_OK;
        }
        if (n == 0) {
            return HIO_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == ECONNRESET) {
            return HIO_EOF;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            hio_result waited = wait_for(fd, POLLIN, deadline, error_out);
            if (waited != HIO_OK) {
                return waited;
            }
            continue;
        }
        *error_out = errno;
        return HIO_ERROR;
    }
}
