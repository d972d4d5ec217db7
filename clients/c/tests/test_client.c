/*
 * test_client.c: the client against a scripted server, to reach what a correct
 * daemon never does: frames the client table refuses (PROTOCOL.md section 6, client
 * side), malformed replies, replies cut short, a receive buffer that fills, and the
 * orderings a real daemon produces only by chance.
 *
 * Each test forks a child that accepts one connection on a socket in a temporary
 * directory and plays its script; the child exits non-zero if the client sent
 * something else than the script expects. Nothing here sleeps: each side waits for
 * the other's bytes, bounded by a timeout that only marks a failure.
 */
#define _XOPEN_SOURCE 700

#include "check.h"
#include "frames.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SCRIPT_TIMEOUT_MS = 5000, WATCHDOG_S = 60 };

static char scratch_dir[64];
static char socket_path[96];

/* ---------------------------------------------------------- the server side ---- */

typedef void (*script)(int fd);

/* Child side: read exactly len bytes, or exit 10. */
static void read_exact(int fd, uint8_t *buffer, size_t len) {
    size_t have = 0;
    while (have < len) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, SCRIPT_TIMEOUT_MS) <= 0) {
            _exit(10);
        }
        ssize_t n = read(fd, buffer + have, len - have);
        if (n <= 0) {
            _exit(11);
        }
        have += (size_t)n;
    }
}

static uint8_t request[HERALD_FRAME_BYTES_MAX];

/* Child side: read one frame from the client, which must be of this type (exit 12
 * otherwise); returns its body length (the body is at request + 6). */
static size_t expect_frame(int fd, uint8_t type) {
    read_exact(fd, request, 4);
    uint32_t length = (uint32_t)request[0] | (uint32_t)request[1] << 8 | (uint32_t)request[2] << 16 |
                      (uint32_t)request[3] << 24;
    if (length < 2 || length > HERALD_FRAME_BYTES_MAX - 4) {
        _exit(13);
    }
    read_exact(fd, request + 4, length);
    if (request[4] != type || request[5] != 0) {
        _exit(12);
    }
    return length - 2;
}

static uint64_t request_u64(size_t offset) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | request[6 + offset + (size_t)i];
    }
    return v;
}

static void send_all(int fd, const void *bytes, size_t len) {
    const uint8_t *p = bytes;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            _exit(0); /* the client went away: the scripts that expect this are done */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void send_frame(int fd, const frame_bytes *f) {
    send_all(fd, f->bytes, f->len);
}

/* Read until the client closes (it decided the conversation is over). */
static void await_close(int fd) {
    uint8_t sink[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, SCRIPT_TIMEOUT_MS) <= 0) {
            _exit(14);
        }
        if (read(fd, sink, sizeof sink) <= 0) {
            return;
        }
    }
}

static const uint8_t HELLO_OK[] = {0x14, 0x00, 0x00, 0x00, 0x81, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00};

static void hello(int fd) {
    expect_frame(fd, 0x01);
    send_all(fd, HELLO_OK, sizeof HELLO_OK);
}

static void hello_and_subscribe(int fd) {
    hello(fd);
    expect_frame(fd, 0x04);
    static const uint8_t subscribed[] = {11, 0, 0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    send_all(fd, subscribed, sizeof subscribed);
}

static void error_frame(frame_bytes *f, uint64_t correlation, unsigned code, const char *message) {
    f->len = 0;
    fb_begin(f, 0x83);
    fb_u64(f, correlation);
    fb_u16(f, code);
    fb_u16(f, (unsigned)strlen(message));
    fb_text(f, message);
    fb_end(f);
}

static void stored_frame(frame_bytes *f, uint64_t correlation, uint64_t first, uint64_t last, unsigned count) {
    f->len = 0;
    fb_begin(f, 0x82);
    fb_u64(f, correlation);
    fb_u64(f, first);
    fb_u64(f, last);
    fb_u16(f, count);
    fb_end(f);
}

static frame_bytes script_frame; /* the child's own copy after fork */

/* ---------------------------------------------------------- the client side ---- */

static int listener = -1;
static pid_t server_pid;

/* Listen, fork the server child that plays `play` on the one connection it accepts. */
static void server_start(script play) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path, socket_path, strlen(socket_path) + 1);
    unlink(socket_path);
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4) != 0) {
        perror("scripted server: listen");
        exit(1);
    }
    fflush(NULL);
    server_pid = fork();
    if (server_pid == 0) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            _exit(15);
        }
        play(fd);
        close(fd);
        _exit(0);
    }
    close(listener);
}

/* Wait for the server child; its script must have gone as planned. */
static void server_finish(void) {
    int status = 0;
    while (waitpid(server_pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "     the scripted server ended with status %d (see the exit codes in test_client.c)\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    }
    unlink(socket_path);
}

static herald_client *connect_role(herald_role role, herald_status expected) {
    herald_client *c = NULL;
    CHECK_STATUS(c, herald_connect(socket_path, role, "scripted", NULL, &c), expected);
    return c;
}

static herald_client *subscribed_client(void) {
    herald_client *c = connect_role(HERALD_ROLE_SUBSCRIBER, HERALD_OK);
    const char *patterns[] = {">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(c, herald_subscribe(c, &s, NULL), HERALD_OK);
    return c;
}

/* ------------------------------------------------------------------ tests ---- */

static void play_hello_ok_too_long(int fd) {
    expect_frame(fd, 0x01);
    uint8_t bad[sizeof HELLO_OK + 1];
    memcpy(bad, HELLO_OK, sizeof HELLO_OK);
    bad[0] = 0x15;
    bad[sizeof HELLO_OK] = 0;
    send_all(fd, bad, sizeof bad);
    await_close(fd);
}

static void hello_ok_of_the_wrong_size_is_a_protocol_error(void) {
    server_start(play_hello_ok_too_long);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_PROTOCOL);
    CHECK(c != NULL && !herald_is_open(c));
    CHECK(strstr(herald_last_error(c)->message, "HelloOk body is 19 bytes") != NULL);
    herald_close(c);
    server_finish();
}

static void play_unsupported_version(int fd) {
    expect_frame(fd, 0x01);
    error_frame(&script_frame, 0, 3, "this daemon speaks version 2 only");
    send_frame(fd, &script_frame);
}

static void unsupported_version_is_reported_with_the_daemons_code_and_message(void) {
    server_start(play_unsupported_version);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(c)->server_code, HERALD_SERVER_UNSUPPORTED_VERSION);
    CHECK(strcmp(herald_last_error(c)->server_message, "this daemon speaks version 2 only") == 0);
    CHECK(strstr(herald_last_error(c)->message, "unsupported_version") != NULL);
    herald_close(c);
    server_finish();
}

static void play_huge_length_then_silence(int fd) {
    expect_frame(fd, 0x01);
    static const uint8_t header[] = {0x00, 0xFF, 0xFF, 0xFF, 0x81, 0x00};
    send_all(fd, header, sizeof header);
    await_close(fd); /* no body: a client that waited for one would time out */
}

/* The body never comes. A client that waited for it would end only by its reply
 * timeout (HERALD_E_TIMEOUT) or by end of stream once the script gave up waiting for
 * the close (SCRIPT_TIMEOUT_MS, then exit 14, which server_finish reports); so this
 * protocol error, naming the length, shows the header alone was judged. No clock is
 * read: a slow machine cannot fail it, nor a fast one pass it. */
static void a_length_above_the_limit_is_refused_before_its_body(void) {
    server_start(play_huge_length_then_silence);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_PROTOCOL);
    CHECK(strstr(herald_last_error(c)->message, "above the largest") != NULL);
    herald_close(c);
    server_finish();
}

static void play_undefined_type_then_silence(int fd) {
    expect_frame(fd, 0x01);
    static const uint8_t header[] = {0x10, 0x00, 0x00, 0x00, 0x99, 0x00};
    send_all(fd, header, sizeof header);
    await_close(fd);
}

static void an_undefined_frame_type_is_refused_before_its_body(void) {
    server_start(play_undefined_type_then_silence);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_PROTOCOL);
    CHECK(strstr(herald_last_error(c)->message, "0x99") != NULL);
    herald_close(c);
    server_finish();
}

static void play_deliver_before_subscribed(int fd) {
    hello(fd);
    expect_frame(fd, 0x04);
    script_frame.len = 0;
    fb_deliver(&script_frame, 1, 2, 0, 1, 6, "a.b", "", "", 0, "x", 1);
    send_frame(fd, &script_frame);
    await_close(fd);
}

static void a_delivery_before_subscribed_is_a_protocol_error(void) {
    server_start(play_deliver_before_subscribed);
    herald_client *c = connect_role(HERALD_ROLE_SUBSCRIBER, HERALD_OK);
    const char *patterns[] = {">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(c, herald_subscribe(c, &s, NULL), HERALD_E_PROTOCOL);
    CHECK(strstr(herald_last_error(c)->message, "Deliver while the connection was AwaitSubscribed") != NULL);
    CHECK(!herald_is_open(c));
    herald_close(c);
    server_finish();
}

static void play_deliveries_around_pongs(int fd) {
    hello_and_subscribe(fd);
    expect_frame(fd, 0x0B);
    uint64_t token = request_u64(0);
    /* Two deliveries and a RecoveryDone, then the Pong, in one write. */
    frame_bytes *all = calloc(1, sizeof *all);
    fb_deliver(all, 10, 1, 0, 1, 6, "a.one", "p", "", 0, "ten", 3);
    fb_deliver(all, 11, 1, 1, 2, 6, "a.two", "p", "k", 0, "eleven", 6);
    fb_begin(all, 0x86);
    fb_end(all);
    fb_begin(all, 0x88);
    fb_u64(all, token);
    fb_end(all);
    send_frame(fd, all);
    /* Second ping: a delivery, then the pong, then another delivery behind it. */
    expect_frame(fd, 0x0B);
    token = request_u64(0);
    all->len = 0;
    fb_deliver(all, 12, 1, 0, 1, 6, "a.three", "p", "", 0, "twelve", 6);
    fb_begin(all, 0x88);
    fb_u64(all, token);
    fb_end(all);
    fb_deliver(all, 13, 1, 0, 1, 6, "a.four", "p", "", 0, "thirteen", 8);
    send_frame(fd, all);
    expect_frame(fd, 0x05); /* Confirm 10..=13 */
    if (request_u64(0) != 10 || request_u64(8) != 13) {
        _exit(20);
    }
    free(all);
    await_close(fd);
}

static void deliveries_ahead_of_a_pong_are_kept_in_order(void) {
    server_start(play_deliveries_around_pongs);
    herald_client *c = subscribed_client();
    CHECK_STATUS(c, herald_ping(c), HERALD_OK);
    herald_delivery d;
    CHECK_STATUS(c, herald_receive(c, &d, 0), HERALD_OK);
    CHECK(d.kind == HERALD_DELIVERY_EVENT && d.seq == 10 && strcmp(d.topic, "a.one") == 0);
    CHECK(d.payload_len == 3 && memcmp(d.payload, "ten", 3) == 0);
    CHECK_STATUS(c, herald_receive(c, &d, 0), HERALD_OK);
    CHECK(d.seq == 11 && d.redelivered && d.delivery_count == 2 && d.key_len == 1 && d.key[0] == 'k');
    CHECK_STATUS(c, herald_receive(c, &d, 0), HERALD_OK);
    CHECK(d.kind == HERALD_DELIVERY_RECOVERY_DONE);
    CHECK_STATUS(c, herald_ping(c), HERALD_OK);
    CHECK_STATUS(c, herald_receive(c, &d, SCRIPT_TIMEOUT_MS), HERALD_OK);
    CHECK(d.seq == 12 && d.payload_len == 6 && memcmp(d.payload, "twelve", 6) == 0);
    CHECK_STATUS(c, herald_receive(c, &d, SCRIPT_TIMEOUT_MS), HERALD_OK);
    CHECK(d.seq == 13 && d.payload_len == 8 && memcmp(d.payload, "thirteen", 8) == 0);
    CHECK_STATUS(c, herald_receive(c, &d, 0), HERALD_E_TIMEOUT);
    CHECK_STATUS(c, herald_confirm(c, 10, 13), HERALD_OK);
    herald_close(c);
    server_finish();
}

static void play_full_then_stored(int fd) {
    hello(fd);
    expect_frame(fd, 0x02);
    error_frame(&script_frame, request_u64(0), 5, "ring full");
    send_frame(fd, &script_frame);
    expect_frame(fd, 0x02);
    stored_frame(&script_frame, request_u64(0), 5, 5, 1);
    send_frame(fd, &script_frame);
    await_close(fd);
}

static void full_answers_its_publish_and_keeps_the_connection(void) {
    server_start(play_full_then_stored);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_OK);
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "a.b";
    uint64_t seq = 0;
    CHECK_STATUS(c, herald_publish(c, &e, &seq), HERALD_E_FULL);
    CHECK_EQ(herald_last_error(c)->server_code, HERALD_SERVER_FULL);
    CHECK(strcmp(herald_last_error(c)->server_message, "ring full") == 0);
    CHECK(herald_is_open(c));
    CHECK_STATUS(c, herald_publish(c, &e, &seq), HERALD_OK);
    CHECK_EQ(seq, 5);
    herald_close(c);
    server_finish();
}

static void play_forbidden_publish_and_subscribe(int fd) {
    hello(fd);
    expect_frame(fd, 0x02);
    error_frame(&script_frame, request_u64(0), 13, "not this topic");
    send_frame(fd, &script_frame);
    expect_frame(fd, 0x02);
    stored_frame(&script_frame, request_u64(0), 9, 9, 1);
    send_frame(fd, &script_frame);
    expect_frame(fd, 0x04);
    error_frame(&script_frame, 0, 13, "not these patterns");
    send_frame(fd, &script_frame);
    /* Refused, the connection is as before: a second subscribe may follow. */
    expect_frame(fd, 0x04);
    static const uint8_t subscribed[] = {11, 0, 0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    send_all(fd, subscribed, sizeof subscribed);
    await_close(fd);
}

static void forbidden_refuses_one_request_and_keeps_the_connection(void) {
    server_start(play_forbidden_publish_and_subscribe);
    herald_client *c = connect_role(HERALD_ROLE_BOTH, HERALD_OK);
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "a.b";
    uint64_t seq = 0;
    CHECK_STATUS(c, herald_publish(c, &e, &seq), HERALD_E_FORBIDDEN);
    CHECK_EQ(herald_last_error(c)->server_code, HERALD_SERVER_FORBIDDEN);
    CHECK(strcmp(herald_last_error(c)->server_message, "not this topic") == 0);
    CHECK(herald_is_open(c));
    CHECK_STATUS(c, herald_publish(c, &e, &seq), HERALD_OK);
    CHECK_EQ(seq, 9);
    const char *patterns[] = {">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(c, herald_subscribe(c, &s, NULL), HERALD_E_FORBIDDEN);
    CHECK(herald_is_open(c));
    CHECK_STATUS(c, herald_subscribe(c, &s, NULL), HERALD_OK);
    herald_close(c);
    server_finish();
}

static void play_stored_for_another_correlation(int fd) {
    hello(fd);
    expect_frame(fd, 0x02);
    stored_frame(&script_frame, request_u64(0) + 1, 5, 5, 1);
    send_frame(fd, &script_frame);
    await_close(fd);
}

static void a_stored_for_another_publish_is_a_protocol_error(void) {
    server_start(play_stored_for_another_correlation);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_OK);
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "a.b";
    CHECK_STATUS(c, herald_publish(c, &e, NULL), HERALD_E_PROTOCOL);
    CHECK(!herald_is_open(c));
    herald_close(c);
    server_finish();
}

static void play_stored_counting_too_many(int fd) {
    hello(fd);
    expect_frame(fd, 0x03);
    stored_frame(&script_frame, request_u64(0), 5, 9, 3); /* a batch of 2 */
    send_frame(fd, &script_frame);
    await_close(fd);
}

static void a_stored_counting_more_than_the_batch_is_a_protocol_error(void) {
    server_start(play_stored_counting_too_many);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_OK);
    herald_event e[2];
    memset(e, 0, sizeof e);
    e[0].topic = e[1].topic = "a.b";
    CHECK_STATUS(c, herald_publish_batch(c, e, 2, NULL), HERALD_E_PROTOCOL);
    herald_close(c);
    server_finish();
}

static void play_half_a_hello_ok(int fd) {
    expect_frame(fd, 0x01);
    send_all(fd, HELLO_OK, 10);
}

static void a_server_that_hangs_up_mid_frame_is_a_protocol_error(void) {
    server_start(play_half_a_hello_ok);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_PROTOCOL);
    CHECK(strstr(herald_last_error(c)->message, "middle of a frame") != NULL);
    herald_close(c);
    server_finish();
}

static void play_hang_up_after_hello(int fd) {
    expect_frame(fd, 0x01);
}

static void a_server_that_hangs_up_before_replying_is_closed(void) {
    server_start(play_hang_up_after_hello);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_E_CLOSED);
    CHECK(!herald_is_open(c));
    herald_close(c);
    server_finish();
}

static void play_flood_instead_of_pong(int fd) {
    hello_and_subscribe(fd);
    expect_frame(fd, 0x0B);
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    for (uint64_t seq = 1; seq <= 4; seq++) {
        script_frame.len = 0;
        fb_deliver(&script_frame, seq, 1, 0, 1, 6, "a.b", "", "", 0, payload, sizeof payload);
        send_frame(fd, &script_frame); /* ends the script once the client has closed */
    }
    await_close(fd);
}

static void deliveries_that_fill_the_receive_buffer_are_an_overflow(void) {
    server_start(play_flood_instead_of_pong);
    herald_client *c = NULL;
    herald_connect_options options = {0, HERALD_RECEIVE_BUFFER_BYTES_MIN};
    CHECK_STATUS(c, herald_connect(socket_path, HERALD_ROLE_SUBSCRIBER, "scripted", &options, &c), HERALD_OK);
    const char *patterns[] = {">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(c, herald_subscribe(c, &s, NULL), HERALD_OK);
    CHECK_STATUS(c, herald_ping(c), HERALD_E_OVERFLOW);
    CHECK(!herald_is_open(c));
    herald_close(c);
    server_finish();
}

static void play_status_reply_then_pong(int fd) {
    hello(fd);
    expect_frame(fd, 0x0A);
    frame_bytes *f = &script_frame;
    f->len = 0;
    fb_begin(f, 0x87);
    fb_text(f, "{\"a\":1}");
    fb_end(f);
    fb_begin(f, 0x88); /* the answer to the ping the client has not sent yet */
    fb_u64(f, 1);
    fb_end(f);
    send_frame(fd, f);
    expect_frame(fd, 0x0B);
    if (request_u64(0) != 1) {
        _exit(21);
    }
    await_close(fd);
}

static void status_text_is_terminated_without_touching_the_next_frame(void) {
    server_start(play_status_reply_then_pong);
    herald_client *c = connect_role(HERALD_ROLE_CONTROL, HERALD_OK);
    const char *json = NULL;
    size_t len = 0;
    CHECK_STATUS(c, herald_request_status(c, &json, &len), HERALD_OK);
    CHECK(json != NULL && len == 7 && strcmp(json, "{\"a\":1}") == 0);
    CHECK_STATUS(c, herald_ping(c), HERALD_OK); /* its Pong was right behind the JSON */
    herald_close(c);
    server_finish();
}

static void play_error_while_receiving(int fd) {
    hello_and_subscribe(fd);
    error_frame(&script_frame, 0, 42, "a code from the future");
    send_frame(fd, &script_frame);
    await_close(fd);
}

static void an_unknown_error_code_closes_and_is_kept(void) {
    server_start(play_error_while_receiving);
    herald_client *c = subscribed_client();
    herald_delivery d;
    CHECK_STATUS(c, herald_receive(c, &d, SCRIPT_TIMEOUT_MS), HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(c)->server_code, 42);
    CHECK(strcmp(herald_server_code_name(42), "unknown") == 0);
    CHECK(!herald_is_open(c));
    herald_close(c);
    server_finish();
}

static void play_error_and_hang_up(int fd) {
    hello_and_subscribe(fd);
    error_frame(&script_frame, 0, 7, "shutting down");
    send_frame(fd, &script_frame);
}

static void a_write_after_the_daemon_hung_up_reports_its_last_error(void) {
    server_start(play_error_and_hang_up);
    herald_client *c = subscribed_client();
    server_finish(); /* the server has sent its Error and closed: the write will fail */
    CHECK_STATUS(c, herald_confirm(c, 1, 1), HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(c)->server_code, HERALD_SERVER_SHUTTING_DOWN);
    herald_close(c);
}

static void play_goodbye(int fd) {
    hello(fd);
    expect_frame(fd, 0x0C);
}

static void goodbye_is_sent_and_waits_for_the_close(void) {
    server_start(play_goodbye);
    herald_client *c = connect_role(HERALD_ROLE_PRODUCER, HERALD_OK);
    CHECK_STATUS(c, herald_goodbye(c), HERALD_OK);
    CHECK(!herald_is_open(c));
    CHECK_STATUS(c, herald_ping(c), HERALD_E_CLOSED);
    herald_close(c);
    server_finish();
}

static void play_hello_check_name(int fd) {
    size_t body = expect_frame(fd, 0x01);
    static const uint8_t want[] = {0x48, 0x52, 0x4C, 0x44, 1, 0, 1, 0, 4, 5, 'o', 'p', 'e', 'r', 'a'};
    if (body != sizeof want || memcmp(request + 6, want, sizeof want) != 0) {
        _exit(22);
    }
    send_all(fd, HELLO_OK, sizeof HELLO_OK);
    await_close(fd);
}

static void connect_sends_the_hello_of_section_4_2(void) {
    server_start(play_hello_check_name);
    herald_client *c = NULL;
    CHECK_STATUS(c, herald_connect(socket_path, HERALD_ROLE_CONTROL, "opera", NULL, &c), HERALD_OK);
    CHECK_EQ(herald_node_id(c), 7);
    herald_close(c);
    server_finish();
}

static void connect_refuses_bad_arguments_locally(void) {
    herald_client *c = NULL;
    CHECK_STATUS(c, herald_connect(socket_path, (herald_role)9, "x", NULL, &c), HERALD_E_ARGUMENT);
    herald_close(c);
    CHECK_STATUS(c, herald_connect(socket_path, HERALD_ROLE_PRODUCER, "\xFF", NULL, &c), HERALD_E_ARGUMENT);
    herald_close(c);
    herald_connect_options options = {0, 1000};
    CHECK_STATUS(c, herald_connect(socket_path, HERALD_ROLE_PRODUCER, "x", &options, &c), HERALD_E_ARGUMENT);
    herald_close(c);
    char long_path[200];
    memset(long_path, 'p', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = 0;
    CHECK_STATUS(c, herald_connect(long_path, HERALD_ROLE_PRODUCER, "x", NULL, &c), HERALD_E_ARGUMENT);
    CHECK(strstr(herald_last_error(c)->message, "longer than") != NULL);
    herald_close(c);
    CHECK(herald_connect(socket_path, HERALD_ROLE_PRODUCER, "x", NULL, NULL) == HERALD_E_ARGUMENT);
}

int main(void) {
    alarm(WATCHDOG_S);
    signal(SIGPIPE, SIG_IGN);
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/libherald-scripted.XXXXXX");
    if (mkdtemp(scratch_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(socket_path, sizeof socket_path, "%s/s.sock", scratch_dir);
    RUN(hello_ok_of_the_wrong_size_is_a_protocol_error);
    RUN(unsupported_version_is_reported_with_the_daemons_code_and_message);
    RUN(a_length_above_the_limit_is_refused_before_its_body);
    RUN(an_undefined_frame_type_is_refused_before_its_body);
    RUN(a_delivery_before_subscribed_is_a_protocol_error);
    RUN(deliveries_ahead_of_a_pong_are_kept_in_order);
    RUN(full_answers_its_publish_and_keeps_the_connection);
    RUN(forbidden_refuses_one_request_and_keeps_the_connection);
    RUN(a_stored_for_another_publish_is_a_protocol_error);
    RUN(a_stored_counting_more_than_the_batch_is_a_protocol_error);
    RUN(a_server_that_hangs_up_mid_frame_is_a_protocol_error);
    RUN(a_server_that_hangs_up_before_replying_is_closed);
    RUN(deliveries_that_fill_the_receive_buffer_are_an_overflow);
    RUN(status_text_is_terminated_without_touching_the_next_frame);
    RUN(an_unknown_error_code_closes_and_is_kept);
    RUN(a_write_after_the_daemon_hung_up_reports_its_last_error);
    RUN(goodbye_is_sent_and_waits_for_the_close);
    RUN(connect_sends_the_hello_of_section_4_2);
    RUN(connect_refuses_bad_arguments_locally);
    rmdir(scratch_dir);
    return finish("test_client");
}
