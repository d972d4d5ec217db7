/*
 * test_daemon.c: libherald against a real herald daemon.
 *
 * The daemon is `herald serve --data-dir TMP`, from $HERALD_BIN, else
 * ../../target/debug/herald (relative to clients/c, where `make check` runs), else
 * `herald` on PATH. The tests wait for its `ready:` line on stdout, never for time
 * to pass: every wait here ends as soon as what it waits for arrives, and its timeout
 * only bounds a failure.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    READY_TIMEOUT_MS = 20000,   /* bound on the daemon's start */
    DELIVERY_TIMEOUT_MS = 5000, /* bound on a delivery that must come */
    WATCHDOG_S = 120            /* the whole program, should anything hang */
};

/* ------------------------------------------------------------------ daemon ---- */

typedef struct daemon {
    const char *binary;
    char data_dir[128];
    char socket_path[160];
    char stderr_path[192];
    const char *region_size;
    const char *extra[8];
    pid_t pid;
    int starts;
} daemon;

static char scratch_dir[64];
static const char *herald_binary;

static const char *find_binary(void) {
    const char *configured = getenv("HERALD_BIN");
    if (configured != NULL && configured[0] != '\0') {
        return configured;
    }
    static const char *repository_build = "../../target/debug/herald";
    if (access(repository_build, X_OK) == 0) {
        return repository_build;
    }
    const char *path = getenv("PATH");
    static char found[PATH_MAX];
    while (path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        size_t len = end == NULL ? strlen(path) : (size_t)(end - path);
        if (len > 0 && len + sizeof "/herald" < sizeof found) {
            memcpy(found, path, len);
            memcpy(found + len, "/herald", sizeof "/herald");
            if (access(found, X_OK) == 0) {
                return found;
            }
        }
        path = end == NULL ? NULL : end + 1;
    }
    return NULL;
}

static void print_daemon_stderr(const daemon *d) {
    FILE *f = fopen(d->stderr_path, "r");
    if (f == NULL) {
        return;
    }
    char line[512];
    fprintf(stderr, "---- herald's stderr (%s):\n", d->stderr_path);
    while (fgets(line, sizeof line, f) != NULL) {
        fputs(line, stderr);
    }
    fclose(f);
}

/* Start the daemon and return once it printed `ready:`; false (said why) if not. */
static bool daemon_start(daemon *d) {
    d->starts++;
    snprintf(d->stderr_path, sizeof d->stderr_path, "%s-stderr-%d.log", d->data_dir, d->starts % 100);
    int out[2];
    if (pipe(out) != 0) {
        perror("pipe");
        return false;
    }
    const char *argv[16] = {d->binary, "serve", "--data-dir", d->data_dir, "--region-size", d->region_size,
                            "--dedupe-window-events", "4096"};
    int argc = 8;
    for (int i = 0; i < 8 && d->extra[i] != NULL; i++) {
        argv[argc++] = d->extra[i];
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return false;
    }
    if (pid == 0) {
        int err = open(d->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (err < 0 || in < 0 || dup2(out[1], 1) < 0 || dup2(err, 2) < 0 || dup2(in, 0) < 0) {
            _exit(126);
        }
        close(out[0]);
        execv(d->binary, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(out[1]);
    d->pid = pid;
    char line[1024];
    size_t have = 0;
    bool ready = false;
    while (have < sizeof line - 1) {
        struct pollfd p = {out[0], POLLIN, 0};
        int n = poll(&p, 1, READY_TIMEOUT_MS);
        if (n <= 0) {
            fprintf(stderr, "herald printed no ready line within %d ms\n", READY_TIMEOUT_MS);
            break;
        }
        ssize_t got = read(out[0], line + have, sizeof line - 1 - have);
        if (got <= 0) {
            fprintf(stderr, "herald exited before it was ready\n");
            break;
        }
        have += (size_t)got;
        line[have] = '\0';
        if (strchr(line, '\n') != NULL) {
            ready = strncmp(line, "ready: serving on ", 18) == 0;
            if (!ready) {
                fprintf(stderr, "herald's first line is not `ready: serving on ...`: %s", line);
            }
            break;
        }
    }
    close(out[0]); /* the daemon prints nothing more on stdout */
    if (!ready) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        d->pid = 0;
        print_daemon_stderr(d);
    }
    return ready;
}

static int daemon_signal_and_wait(daemon *d, int signal_number) {
    if (d->pid <= 0) {
        return 0;
    }
    kill(d->pid, signal_number);
    int status = 0;
    while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR) {
    }
    d->pid = 0;
    return status;
}

static void daemon_stop(daemon *d) {
    daemon_signal_and_wait(d, SIGTERM);
}

/* kill -9: a crash. */
static void daemon_kill(daemon *d) {
    daemon_signal_and_wait(d, SIGKILL);
}

static bool daemon_init(daemon *d, const char *name) {
    memset(d, 0, sizeof *d);
    d->binary = herald_binary;
    d->region_size = "8M"; /* small, quick to create */
    snprintf(d->data_dir, sizeof d->data_dir, "%s/%s", scratch_dir, name);
    snprintf(d->socket_path, sizeof d->socket_path, "%s/herald.sock", d->data_dir);
    return true;
}

/* --------------------------------------------------------------- helpers ---- */

static daemon shared; /* one daemon for the tests that do not restart it */

static herald_client *connect_as(const daemon *d, herald_role role, const char *name) {
    herald_client *c = NULL;
    herald_status s = herald_connect(d->socket_path, role, name, NULL, &c);
    if (!CHECK(s == HERALD_OK)) {
        fprintf(stderr, "     connect: %s: %s\n", herald_status_name(s),
                c != NULL ? herald_last_error(c)->message : "no memory");
    }
    return c;
}

static herald_client *subscribe_as(const daemon *d, const char *client_name, const char *subscription_name,
                                   const char *pattern, herald_subscribed *subscribed) {
    herald_client *c = connect_as(d, HERALD_ROLE_SUBSCRIBER, client_name);
    const char *patterns[] = {pattern};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = subscription_name;
    s.patterns = patterns;
    s.pattern_count = 1;
    herald_subscribed ignored;
    CHECK_STATUS(c, herald_subscribe(c, &s, subscribed != NULL ? subscribed : &ignored), HERALD_OK);
    return c;
}

static uint64_t publish_text(herald_client *c, const char *topic, uint8_t severity, const char *payload) {
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = topic;
    e.severity = severity;
    e.payload = payload;
    e.payload_len = strlen(payload);
    uint64_t seq = 0;
    CHECK_STATUS(c, herald_publish(c, &e, &seq), HERALD_OK);
    return seq;
}

/* The next delivery, which must be an event. */
#define expect_event(c, d) expect_event_at(c, d, __LINE__)
static bool expect_event_at(herald_client *c, herald_delivery *d, int line) {
    herald_status s = herald_receive(c, d, DELIVERY_TIMEOUT_MS);
    if (!check_report(s == HERALD_OK && d->kind == HERALD_DELIVERY_EVENT, __FILE__, line, "an event is delivered")) {
        fprintf(stderr, "     receive: %s (kind %d): %s\n", herald_status_name(s), (int)d->kind,
                herald_last_error(c)->message);
        return false;
    }
    return true;
}

static bool payload_is(const herald_delivery *d, const char *text) {
    return d->payload_len == strlen(text) && (d->payload_len == 0 || memcmp(d->payload, text, d->payload_len) == 0);
}

static void goodbye(herald_client *c) {
    CHECK_STATUS(c, herald_goodbye(c), HERALD_OK);
    herald_close(c);
}

static uint64_t wall_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- allocations ---- */

/* The test is linked with -Wl,--wrap=malloc (and calloc, realloc): every allocation
 * libherald's objects make goes through these and is counted. */
static long allocations;
void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *pointer, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *pointer, size_t size);

void *__wrap_malloc(size_t size) {
    allocations++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size) {
    allocations++;
    return __real_calloc(count, size);
}

void *__wrap_realloc(void *pointer, size_t size) {
    allocations++;
    return __real_realloc(pointer, size);
}

/* ------------------------------------------------------------------ tests ---- */

static void publish_subscribe_confirm_round_trip(void) {
    herald_client *sub = subscribe_as(&shared, "rt-sub", "rt", "rt.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "rt-producer");
    CHECK(herald_frame_bytes_max(pub) == HERALD_FRAME_BYTES_MAX);
    CHECK(herald_event_payload_bytes_max(pub) == HERALD_EVENT_PAYLOAD_BYTES_MAX);
    uint64_t before_ns = wall_clock_ns();
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "rt.one";
    e.severity = HERALD_SEVERITY_ERR;
    e.flags = 0x1234;
    e.payload = "hello\0world";
    e.payload_len = 11;
    uint64_t seq = 0;
    CHECK_STATUS(pub, herald_publish(pub, &e, &seq), HERALD_OK);
    uint64_t after_ns = wall_clock_ns();
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, seq);
        CHECK(strcmp(d.topic, "rt.one") == 0 && d.topic_len == 6);
        CHECK(strcmp(d.source, "rt-producer") == 0); /* empty source: the hello's name */
        CHECK_EQ(d.severity, HERALD_SEVERITY_ERR);
        CHECK_EQ(d.flags, 0x1234);
        CHECK(d.payload_len == 11 && memcmp(d.payload, "hello\0world", 11) == 0);
        CHECK(d.key == NULL && d.key_len == 0);
        CHECK(!d.redelivered);
        CHECK_EQ(d.delivery_count, 1);
        CHECK(d.timestamp_ns >= before_ns - 1000000000ull && d.timestamp_ns <= after_ns + 1000000000ull);
        CHECK_STATUS(sub, herald_confirm(sub, d.seq, d.seq), HERALD_OK);
    }
    goodbye(sub);
    /* Confirmed, so not redelivered: the next delivery of "rt" is a new event. */
    herald_subscribed attached;
    sub = subscribe_as(&shared, "rt-sub", "rt", "rt.>", &attached);
    CHECK(!attached.recovering);
    CHECK_EQ(attached.pending_events, 0);
    uint64_t second = publish_text(pub, "rt.two", HERALD_SEVERITY_INFO, "second");
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, second);
        CHECK(!d.redelivered);
    }
    goodbye(sub);
    goodbye(pub);
}

static void a_source_and_key_come_back_as_published(void) {
    herald_client *sub = subscribe_as(&shared, "src-sub", "", "src.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "src-producer");
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "src.x";
    e.source = "sensor-\xC3\xA9";
    e.key = "id-7";
    e.key_len = 4;
    e.severity = HERALD_SEVERITY_NOTICE;
    uint64_t seq = 0;
    CHECK_STATUS(pub, herald_publish(pub, &e, &seq), HERALD_OK);
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, seq);
        CHECK(strcmp(d.source, "sensor-\xC3\xA9") == 0);
        CHECK(d.key_len == 4 && memcmp(d.key, "id-7", 4) == 0);
        CHECK(d.payload == NULL && d.payload_len == 0);
    }
    goodbye(sub);
    goodbye(pub);
}

static void batch_is_stored_whole_and_delivered_in_order(void) {
    herald_client *sub = subscribe_as(&shared, "batch-sub", "batch", "batch.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "batch-producer");
    herald_event events[3];
    const char *payloads[3] = {"first", "second", "third"};
    memset(events, 0, sizeof events);
    for (int i = 0; i < 3; i++) {
        events[i].topic = i == 1 ? "batch.b" : "batch.a";
        events[i].severity = HERALD_SEVERITY_INFO;
        events[i].payload = payloads[i];
        events[i].payload_len = strlen(payloads[i]);
    }
    herald_stored stored;
    CHECK_STATUS(pub, herald_publish_batch(pub, events, 3, &stored), HERALD_OK);
    CHECK_EQ(stored.count, 3);
    CHECK(stored.last_seq >= stored.first_seq + 2);
    uint64_t previous = 0;
    herald_delivery d;
    for (int i = 0; i < 3; i++) {
        if (!expect_event(sub, &d)) {
            break;
        }
        CHECK(payload_is(&d, payloads[i]));
        CHECK(strcmp(d.topic, events[i].topic) == 0);
        CHECK(d.seq >= stored.first_seq && d.seq <= stored.last_seq);
        CHECK(i == 0 ? d.seq == stored.first_seq : d.seq > previous);
        CHECK(i != 2 || d.seq == stored.last_seq);
        previous = d.seq;
    }
    CHECK_STATUS(sub, herald_confirm(sub, stored.first_seq, stored.last_seq), HERALD_OK);

    /* Two events with one key in one batch are one event (section 10.1). */
    events[0].key = events[1].key = "same";
    events[0].key_len = events[1].key_len = 4;
    CHECK_STATUS(pub, herald_publish_batch(pub, events, 2, &stored), HERALD_OK);
    CHECK_EQ(stored.count, 1);
    CHECK_EQ(stored.first_seq, stored.last_seq);
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, stored.first_seq);
        CHECK(payload_is(&d, "first"));
        CHECK_STATUS(sub, herald_confirm(sub, d.seq, d.seq), HERALD_OK);
    }
    goodbye(sub);
    goodbye(pub);
}

static void idempotent_retry_gets_the_same_seq(void) {
    herald_client *sub = subscribe_as(&shared, "idem-sub", "idem", "idem.>", NULL);
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "idem.order";
    e.severity = HERALD_SEVERITY_INFO;
    e.key = "order-1001";
    e.key_len = 10;
    e.payload = "v1";
    e.payload_len = 2;
    uint64_t first = 0, retry = 0, other = 0;
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "idem-producer");
    CHECK_STATUS(pub, herald_publish(pub, &e, &first), HERALD_OK);
    goodbye(pub);
    /* "Publish again after a lost Stored": a new connection, the same source and key. */
    pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "idem-producer");
    CHECK_STATUS(pub, herald_publish(pub, &e, &retry), HERALD_OK);
    CHECK_EQ(retry, first);
    e.key = "order-1002";
    CHECK_STATUS(pub, herald_publish(pub, &e, &other), HERALD_OK);
    CHECK(other > first);
    /* Stored once: after `first` comes `other`, not a second copy. */
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, first);
        CHECK(d.key_len == 10 && memcmp(d.key, "order-1001", 10) == 0);
    }
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, other);
    }
    CHECK_STATUS(sub, herald_confirm(sub, first, other), HERALD_OK);
    goodbye(sub);
    goodbye(pub);
}

static void durable_subscription_resumes_after_disconnect_with_redelivery_flagged(void) {
    herald_client *sub = subscribe_as(&shared, "dur-sub", "dur", "dur.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "dur-producer");
    uint64_t one = publish_text(pub, "dur.x", HERALD_SEVERITY_INFO, "one");
    uint64_t two = publish_text(pub, "dur.x", HERALD_SEVERITY_INFO, "two");
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, one);
    }
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, two);
    }
    CHECK_STATUS(sub, herald_confirm(sub, one, one), HERALD_OK);
    goodbye(sub); /* `two` is delivered, not settled */
    uint64_t three = publish_text(pub, "dur.x", HERALD_SEVERITY_INFO, "three");

    herald_subscribed attached;
    sub = subscribe_as(&shared, "dur-sub", "dur", "dur.>", &attached);
    CHECK(!attached.recovering);
    CHECK_EQ(attached.pending_events, 2);
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, two);
        CHECK(d.redelivered);
        CHECK_EQ(d.delivery_count, 2);
        CHECK(payload_is(&d, "two"));
    }
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, three);
        CHECK(!d.redelivered);
        CHECK_EQ(d.delivery_count, 1);
    }
    CHECK_STATUS(sub, herald_confirm(sub, two, three), HERALD_OK);
    goodbye(sub);
    goodbye(pub);
}

static void a_durable_name_is_attached_to_one_connection_at_a_time(void) {
    herald_client *first = subscribe_as(&shared, "niu-1", "niu", ">", NULL);
    herald_client *second = connect_as(&shared, HERALD_ROLE_SUBSCRIBER, "niu-2");
    const char *patterns[] = {">"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = "niu";
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(second, herald_subscribe(second, &s, NULL), HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(second)->server_code, HERALD_SERVER_NAME_IN_USE);
    CHECK(strstr(herald_last_error(second)->message, "name_in_use") != NULL);
    CHECK(!herald_is_open(second));
    herald_close(second);
    goodbye(first);
}

static void a_work_queue_group_gives_each_event_to_one_member(void) {
    const char *patterns[] = {"wq.>"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = "wq";
    s.patterns = patterns;
    s.pattern_count = 1;
    s.window_events = 1; /* a member holds one event until it confirms */
    s.group = true;
    herald_client *members[2];
    for (int i = 0; i < 2; i++) {
        members[i] = connect_as(&shared, HERALD_ROLE_SUBSCRIBER, i == 0 ? "wq-1" : "wq-2");
        CHECK_STATUS(members[i], herald_subscribe(members[i], &s, NULL), HERALD_OK);
    }
    herald_client *outsider = connect_as(&shared, HERALD_ROLE_SUBSCRIBER, "wq-outsider");
    s.group = false;
    CHECK_STATUS(outsider, herald_subscribe(outsider, &s, NULL), HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(outsider)->server_code, HERALD_SERVER_NAME_IN_USE);
    herald_close(outsider);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "wq-producer");
    enum { EVENTS = 6 };
    uint64_t first = 0;
    for (int i = 0; i < EVENTS; i++) {
        uint64_t seq = publish_text(pub, "wq.job", HERALD_SEVERITY_INFO, "job");
        first = i == 0 ? seq : first;
    }
    /* Each round both members are full before either confirms, so each takes exactly
     * one of the next two events. */
    int seen[EVENTS] = {0};
    for (int round = 0; round < EVENTS / 2; round++) {
        herald_delivery d[2];
        for (int i = 0; i < 2; i++) {
            if (!expect_event(members[i], &d[i])) {
                goodbye(members[0]);
                goodbye(members[1]);
                goodbye(pub);
                return;
            }
            CHECK(d[i].seq >= first && d[i].seq < first + EVENTS);
            if (d[i].seq >= first && d[i].seq < first + EVENTS) {
                seen[d[i].seq - first]++;
            }
        }
        for (int i = 0; i < 2; i++) {
            CHECK_STATUS(members[i], herald_confirm(members[i], d[i].seq, d[i].seq), HERALD_OK);
        }
    }
    for (int i = 0; i < EVENTS; i++) {
        CHECK_EQ(seen[i], 1);
    }
    goodbye(members[0]);
    goodbye(members[1]);
    goodbye(pub);
}

static void live_only_subscription_sees_only_events_published_while_attached(void) {
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "live-producer");
    publish_text(pub, "live.before", HERALD_SEVERITY_INFO, "before");
    herald_subscribed attached;
    herald_client *sub = subscribe_as(&shared, "live-sub", "", "live.>", &attached);
    CHECK(!attached.recovering);
    CHECK_EQ(attached.pending_events, 0);
    uint64_t after = publish_text(pub, "live.after", HERALD_SEVERITY_INFO, "after");
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, after);
        CHECK(strcmp(d.topic, "live.after") == 0);
    }
    /* Nothing else waits (a routine timeout keeps the connection open). */
    CHECK_STATUS(sub, herald_receive(sub, &d, 0), HERALD_E_TIMEOUT);
    CHECK(herald_is_open(sub));
    CHECK_STATUS(sub, herald_ping(sub), HERALD_OK);
    goodbye(sub);
    goodbye(pub);
}

static void patterns_and_min_severity_select_the_events(void) {
    herald_client *sub = connect_as(&shared, HERALD_ROLE_SUBSCRIBER, "flt-sub");
    const char *patterns[] = {"flt.*.error", "flt.audit.>"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.name = "flt";
    s.patterns = patterns;
    s.pattern_count = 2;
    s.min_severity = HERALD_SEVERITY_ERR;
    CHECK_STATUS(sub, herald_subscribe(sub, &s, NULL), HERALD_OK);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "flt-producer");
    struct {
        const char *topic;
        uint8_t severity;
        bool delivered;
    } cases[] = {
        {"flt.vol1.error", HERALD_SEVERITY_ERR, true},
        {"flt.a.b.error", HERALD_SEVERITY_ERR, false},   /* * is exactly one segment */
        {"flt.error", HERALD_SEVERITY_EMERG, false},     /* ... not zero */
        {"flt.vol1.error", HERALD_SEVERITY_WARNING, false}, /* less severe than err */
        {"flt.audit.login.ok", HERALD_SEVERITY_CRIT, true},
        {"flt.audit", HERALD_SEVERITY_EMERG, false},     /* > is one or more segments */
        {"flt.vol2.error", HERALD_SEVERITY_DEBUG, false},
        {"flt.vol3.error", HERALD_SEVERITY_EMERG, true}, /* last: proves the rest were passed over */
    };
    size_t n = sizeof cases / sizeof *cases;
    uint64_t seqs[8];
    for (size_t i = 0; i < n; i++) {
        seqs[i] = publish_text(pub, cases[i].topic, cases[i].severity, "x");
    }
    /* Deliveries come in seq order, so once the last matching event is received, any
     * other match would have come before it. */
    herald_delivery d;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].delivered) {
            continue;
        }
        if (!expect_event(sub, &d)) {
            break;
        }
        if (!CHECK(d.seq == seqs[i])) {
            fprintf(stderr, "     expected %s (severity %u), got %s (severity %u)\n", cases[i].topic,
                    cases[i].severity, d.topic, d.severity);
        }
        CHECK_STATUS(sub, herald_confirm(sub, d.seq, d.seq), HERALD_OK);
    }
    goodbye(sub);
    goodbye(pub);
}

static void nak_redelivers_with_the_flag_and_after_its_delay(void) {
    herald_client *sub = subscribe_as(&shared, "nak-sub", "nak", "nak.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "nak-producer");
    uint64_t seq = publish_text(pub, "nak.job", HERALD_SEVERITY_INFO, "job");
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.delivery_count, 1);
        CHECK_STATUS(sub, herald_nak(sub, seq, 0), HERALD_OK);
    }
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, seq);
        CHECK(d.redelivered);
        CHECK_EQ(d.delivery_count, 2);
        CHECK_STATUS(sub, herald_working(sub, seq), HERALD_OK);
        CHECK_STATUS(sub, herald_nak(sub, seq, 300), HERALD_OK);
    }
    int64_t nak_at_ms = monotonic_ms();
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, seq);
        CHECK_EQ(d.delivery_count, 3);
        CHECK(monotonic_ms() - nak_at_ms >= 290); /* "no earlier than delay_ms" */
        CHECK_STATUS(sub, herald_confirm(sub, seq, seq), HERALD_OK);
    }
    CHECK_STATUS(sub, herald_nak(sub, seq, HERALD_NAK_DELAY_MS_MAX + 1), HERALD_E_ARGUMENT);
    CHECK(herald_is_open(sub));
    goodbye(sub);
    goodbye(pub);
}

static void rejected_event_is_listed_by_dead_list(void) {
    herald_client *sub = subscribe_as(&shared, "rej-sub", "rej", "rej.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "rej-producer");
    uint64_t seq = publish_text(pub, "rej.poison", HERALD_SEVERITY_ERR, "poison pill");
    herald_delivery d;
    if (expect_event(sub, &d)) {
        CHECK_EQ(d.seq, seq);
        CHECK_STATUS(sub, herald_reject(sub, seq), HERALD_OK);
    }
    /* The daemon applies one connection's frames in order: once the Pong is back, the
     * Reject before it has been handled. */
    CHECK_STATUS(sub, herald_ping(sub), HERALD_OK);
    herald_client *control = connect_as(&shared, HERALD_ROLE_CONTROL, "rej-control");
    const char *json = NULL;
    size_t json_len = 0;
    CHECK_STATUS(control, herald_admin(control, "{\"op\":\"dead.list\",\"subscription\":\"rej\"}", &json, &json_len),
                 HERALD_OK);
    if (json != NULL) {
        char seq_field[48];
        snprintf(seq_field, sizeof seq_field, "\"seq\":%llu", (unsigned long long)seq);
        int listed = CHECK(strlen(json) == json_len);
        listed &= CHECK(strstr(json, "\"total\":1") != NULL);
        listed &= CHECK(strstr(json, seq_field) != NULL);
        listed &= CHECK(strstr(json, "\"reason\":\"rejected\"") != NULL);
        listed &= CHECK(strstr(json, "\"topic\":\"rej.poison\"") != NULL);
        if (!listed) {
            fprintf(stderr, "     dead.list: %s\n", json);
        }
    }
    /* A request the daemon cannot carry out is answered, and the connection stays. */
    CHECK_STATUS(control, herald_admin(control, "{\"op\":\"no.such.op\"}", &json, &json_len), HERALD_OK);
    CHECK(json != NULL && strstr(json, "\"error\"") != NULL);
    CHECK_STATUS(control, herald_ping(control), HERALD_OK);
    goodbye(control);
    goodbye(sub);
    goodbye(pub);
}

static void status_json_names_the_attached_subscription(void) {
    herald_client *sub = subscribe_as(&shared, "stat-sub", "stat-subscription", "stat.>", NULL);
    herald_client *control = connect_as(&shared, HERALD_ROLE_CONTROL, "stat-control");
    const char *json = NULL;
    size_t json_len = 0;
    CHECK_STATUS(control, herald_request_status(control, &json, &json_len), HERALD_OK);
    if (json != NULL) {
        CHECK(json_len > 2 && json[0] == '{' && json[json_len - 1] == '}' && json[json_len] == '\0');
        CHECK(strstr(json, "\"stat-subscription\"") != NULL);
    }
    goodbye(control);
    goodbye(sub);
}

static void publish_on_a_subscriber_connection_is_not_permitted_and_closes_it(void) {
    herald_client *sub = connect_as(&shared, HERALD_ROLE_SUBSCRIBER, "np-sub");
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "np.x";
    e.severity = HERALD_SEVERITY_INFO;
    CHECK_STATUS(sub, herald_publish(sub, &e, NULL), HERALD_E_SERVER);
    const herald_error *error = herald_last_error(sub);
    CHECK_EQ(error->server_code, HERALD_SERVER_NOT_PERMITTED);
    CHECK(error->server_message[0] != '\0');
    CHECK(strstr(error->message, "not_permitted") != NULL);
    CHECK(!herald_is_open(sub));
    CHECK_STATUS(sub, herald_ping(sub), HERALD_E_CLOSED);
    CHECK(strstr(herald_last_error(sub)->message, "not_permitted") != NULL); /* still says why */
    herald_close(sub);

    /* Status is for the control role only. */
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "np-producer");
    const char *json;
    CHECK_STATUS(pub, herald_request_status(pub, &json, NULL), HERALD_E_SERVER);
    CHECK_EQ(herald_last_error(pub)->server_code, HERALD_SERVER_NOT_PERMITTED);
    herald_close(pub);
}

static void local_refusals_send_nothing_and_keep_the_connection(void) {
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "local-producer");
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "not a topic";
    CHECK_STATUS(pub, herald_publish(pub, &e, NULL), HERALD_E_ARGUMENT);
    CHECK(strstr(herald_last_error(pub)->message, "topic") != NULL);
    herald_delivery d;
    CHECK_STATUS(pub, herald_receive(pub, &d, 0), HERALD_E_STATE);
    CHECK_STATUS(pub, herald_confirm(pub, 1, 1), HERALD_E_STATE);
    CHECK(herald_is_open(pub));
    CHECK_STATUS(pub, herald_ping(pub), HERALD_OK);
    e.topic = "local.ok";
    CHECK_STATUS(pub, herald_publish(pub, &e, NULL), HERALD_OK);
    goodbye(pub);
}

static void both_role_publishes_while_deliveries_wait(void) {
    herald_client *both = connect_as(&shared, HERALD_ROLE_BOTH, "both");
    const char *patterns[] = {"both.>"};
    herald_subscription s;
    herald_subscription_init(&s);
    s.patterns = patterns;
    s.pattern_count = 1;
    CHECK_STATUS(both, herald_subscribe(both, &s, NULL), HERALD_OK);
    uint64_t seqs[20];
    char payload[16];
    for (int i = 0; i < 20; i++) {
        snprintf(payload, sizeof payload, "n%d", i);
        seqs[i] = publish_text(both, "both.x", HERALD_SEVERITY_INFO, payload);
    }
    CHECK_STATUS(both, herald_ping(both), HERALD_OK);
    /* Every delivery that arrived while Stored or Pong was awaited is kept, in order. */
    herald_delivery d;
    for (int i = 0; i < 20; i++) {
        if (!expect_event(both, &d)) {
            break;
        }
        snprintf(payload, sizeof payload, "n%d", i);
        CHECK_EQ(d.seq, seqs[i]);
        CHECK(payload_is(&d, payload));
        CHECK_STATUS(both, herald_confirm(both, d.seq, d.seq), HERALD_OK);
    }
    goodbye(both);
}

static void nothing_is_allocated_after_connect(void) {
    long at_start = allocations;
    herald_client *sub = subscribe_as(&shared, "alloc-sub", "alloc", "alloc.>", NULL);
    herald_client *pub = connect_as(&shared, HERALD_ROLE_PRODUCER, "alloc-producer");
    herald_client *control = connect_as(&shared, HERALD_ROLE_CONTROL, "alloc-control");
    CHECK_EQ(allocations - at_start, 3 * 3); /* each client: itself and its two buffers */
    long after_connect = allocations;

    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    herald_event batch[8];
    memset(batch, 0, sizeof batch);
    for (int i = 0; i < 8; i++) {
        batch[i].topic = "alloc.batch";
        batch[i].payload = payload;
        batch[i].payload_len = 1000;
    }
    herald_event big;
    memset(&big, 0, sizeof big);
    big.topic = "alloc.big";
    big.key = "big-1";
    big.key_len = 5;
    big.payload = payload;
    big.payload_len = sizeof payload;
    int expected = 0;
    for (int round = 0; round < 50; round++) {
        CHECK_STATUS(pub, herald_publish(pub, &big, NULL), HERALD_OK); /* the same key: stored once */
        CHECK_STATUS(pub, herald_publish_batch(pub, batch, 8, NULL), HERALD_OK);
        expected += round == 0 ? 9 : 8;
    }
    herald_delivery d;
    for (int i = 0; i < expected; i++) {
        if (!expect_event(sub, &d)) {
            break;
        }
        CHECK_STATUS(sub, herald_confirm(sub, d.seq, d.seq), HERALD_OK);
    }
    CHECK_STATUS(sub, herald_receive(sub, &d, 0), HERALD_E_TIMEOUT);
    CHECK_STATUS(sub, herald_ping(sub), HERALD_OK);
    const char *json;
    CHECK_STATUS(control, herald_request_status(control, &json, NULL), HERALD_OK);
    CHECK_STATUS(control, herald_admin(control, "{\"op\":\"dead.list\"}", &json, NULL), HERALD_OK);
    herald_event bad = big;
    bad.topic = "bad..topic";
    CHECK_STATUS(pub, herald_publish(pub, &bad, NULL), HERALD_E_ARGUMENT);
    CHECK_EQ(allocations - after_connect, 0);
    goodbye(sub);
    goodbye(pub);
    goodbye(control);
    CHECK_EQ(allocations - after_connect, 0); /* goodbye and close free, never allocate */
}

static void connect_to_a_missing_socket_says_what_to_do(void) {
    herald_client *c = NULL;
    char path[96];
    snprintf(path, sizeof path, "%s/no-such.sock", scratch_dir);
    CHECK_STATUS(c, herald_connect(path, HERALD_ROLE_PRODUCER, "x", NULL, &c), HERALD_E_IO);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK_EQ(herald_last_error(c)->system_errno, ENOENT);
        CHECK(strstr(herald_last_error(c)->message, path) != NULL);
        CHECK(strstr(herald_last_error(c)->message, "is the daemon running") != NULL);
        CHECK(!herald_is_open(c));
    }
    herald_close(c);
}

/* A ring held by a durable subscriber that confirms nothing fills up: `full`, and the
 * producer's connection stays open. */
static void a_full_log_answers_full_and_keeps_the_connection(void) {
    daemon small;
    daemon_init(&small, "full");
    small.region_size = "1M";
    if (!CHECK(daemon_start(&small))) {
        return;
    }
    herald_client *holder = subscribe_as(&small, "holder", "holder", ">", NULL);
    goodbye(holder); /* its position stays, holding every event from here on */
    herald_client *pub = connect_as(&small, HERALD_ROLE_PRODUCER, "filler");
    static uint8_t payload[HERALD_EVENT_PAYLOAD_BYTES_MAX];
    herald_event e;
    memset(&e, 0, sizeof e);
    e.topic = "fill.up";
    e.severity = HERALD_SEVERITY_INFO;
    e.payload = payload;
    e.payload_len = sizeof payload;
    herald_status s = HERALD_OK;
    int stored = 0;
    for (int i = 0; i < 64 && s == HERALD_OK; i++) { /* 1 MiB holds fewer than 16 */
        s = herald_publish(pub, &e, NULL);
        stored += s == HERALD_OK;
    }
    CHECK(stored > 0);
    CHECK_STATUS(pub, s, HERALD_E_FULL);
    CHECK_EQ(herald_last_error(pub)->server_code, HERALD_SERVER_FULL);
    CHECK(herald_is_open(pub));
    CHECK_STATUS(pub, herald_ping(pub), HERALD_OK);
    CHECK_STATUS(pub, herald_publish(pub, &e, NULL), HERALD_E_FULL);
    goodbye(pub);
    daemon_stop(&small);
}

/* kill -9 and restart: unsettled events come again, flagged redelivered, to a
 * subscription that is now recovering (section 10.4). */
static void after_kill_9_unconfirmed_events_are_redelivered(void) {
    daemon crash;
    daemon_init(&crash, "crash");
    if (!CHECK(daemon_start(&crash))) {
        return;
    }
    herald_client *manual = subscribe_as(&crash, "crash-manual", "manual", "crash.>", NULL);
    /* Automatic recovery is a property of the subscription from its creation: asking
     * for it only when re-attaching after the crash has no effect (found by experiment;
     * PROTOCOL.md does not say). */
    const char *patterns[] = {"crash.>"};
    herald_subscription spec;
    herald_subscription_init(&spec);
    spec.name = "automatic";
    spec.patterns = patterns;
    spec.pattern_count = 1;
    spec.automatic_recovery = true;
    herald_client *automatic = connect_as(&crash, HERALD_ROLE_SUBSCRIBER, "crash-auto");
    CHECK_STATUS(automatic, herald_subscribe(automatic, &spec, NULL), HERALD_OK);
    herald_client *pub = connect_as(&crash, HERALD_ROLE_PRODUCER, "crash-producer");
    uint64_t seqs[3];
    seqs[0] = publish_text(pub, "crash.a", HERALD_SEVERITY_ERR, "a");
    seqs[1] = publish_text(pub, "crash.b", HERALD_SEVERITY_ERR, "b");
    seqs[2] = publish_text(pub, "crash.c", HERALD_SEVERITY_ERR, "c");
    herald_delivery d;
    for (int i = 0; i < 3; i++) {
        expect_event(manual, &d);
        expect_event(automatic, &d);
    }
    CHECK_STATUS(manual, herald_confirm(manual, seqs[0], seqs[0]), HERALD_OK);
    CHECK_STATUS(manual, herald_ping(manual), HERALD_OK); /* the confirm is applied */
    daemon_kill(&crash);
    herald_close(manual);
    herald_close(automatic);
    herald_close(pub);
    if (!CHECK(daemon_start(&crash))) {
        return;
    }

    herald_subscribed attached;
    manual = subscribe_as(&crash, "crash-manual", "manual", "crash.>", &attached);
    CHECK(attached.recovering);
    for (int i = 1; i < 3; i++) {
        if (expect_event(manual, &d)) {
            CHECK_EQ(d.seq, seqs[i]);
            CHECK(d.redelivered);
            CHECK(d.delivery_count >= 2);
            CHECK_STATUS(manual, herald_confirm(manual, d.seq, d.seq), HERALD_OK);
        }
    }
    herald_status s = herald_receive(manual, &d, DELIVERY_TIMEOUT_MS);
    CHECK(s == HERALD_OK && d.kind == HERALD_DELIVERY_RECOVERY_DONE);
    CHECK_STATUS(manual, herald_recovered(manual), HERALD_OK);

    automatic = connect_as(&crash, HERALD_ROLE_SUBSCRIBER, "crash-auto");
    CHECK_STATUS(automatic, herald_subscribe(automatic, &spec, &attached), HERALD_OK);
    CHECK(attached.recovering);
    for (int i = 0; i < 3; i++) {
        if (expect_event(automatic, &d)) {
            CHECK_EQ(d.seq, seqs[i]);
            CHECK(d.redelivered);
            CHECK_STATUS(automatic, herald_confirm(automatic, d.seq, d.seq), HERALD_OK);
        }
    }
    s = herald_receive(automatic, &d, DELIVERY_TIMEOUT_MS);
    CHECK(s == HERALD_OK && d.kind == HERALD_DELIVERY_RECOVERY_DONE);

    /* Both back to normal: a new event arrives, first time, to each. */
    pub = connect_as(&crash, HERALD_ROLE_PRODUCER, "crash-producer");
    uint64_t after = publish_text(pub, "crash.after", HERALD_SEVERITY_INFO, "after");
    if (expect_event(manual, &d)) {
        CHECK_EQ(d.seq, after);
        CHECK(!d.redelivered);
    }
    if (expect_event(automatic, &d)) {
        CHECK_EQ(d.seq, after);
        CHECK(!d.redelivered);
    }
    goodbye(manual);
    goodbye(automatic);
    goodbye(pub);
    daemon_stop(&crash);
}

/* ---------------------------------------------------------------- main ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void) {
    alarm(WATCHDOG_S); /* a hang fails the run instead of stalling it; not a wait */
    signal(SIGPIPE, SIG_IGN);
    herald_binary = find_binary();
    if (herald_binary == NULL) {
        fprintf(stderr, "test_daemon: no herald binary: set HERALD_BIN=/path/to/herald, or run `cargo build` at the "
                        "repository root (target/debug/herald), or put herald on PATH\n");
        return 1;
    }
    if (access(herald_binary, X_OK) != 0) {
        fprintf(stderr, "test_daemon: the herald binary %s is not an executable file (%s); fix HERALD_BIN\n",
                herald_binary, strerror(errno));
        return 1;
    }
    printf("test_daemon: daemon %s\n", herald_binary);
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/libherald-test.XXXXXX");
    if (mkdtemp(scratch_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    daemon_init(&shared, "shared");
    if (!daemon_start(&shared)) {
        fprintf(stderr, "test_daemon: the daemon did not start (%s)\n", herald_binary);
        return 1;
    }
    RUN(publish_subscribe_confirm_round_trip);
    RUN(a_source_and_key_come_back_as_published);
    RUN(batch_is_stored_whole_and_delivered_in_order);
    RUN(idempotent_retry_gets_the_same_seq);
    RUN(durable_subscription_resumes_after_disconnect_with_redelivery_flagged);
    RUN(a_durable_name_is_attached_to_one_connection_at_a_time);
    RUN(a_work_queue_group_gives_each_event_to_one_member);
    RUN(live_only_subscription_sees_only_events_published_while_attached);
    RUN(patterns_and_min_severity_select_the_events);
    RUN(nak_redelivers_with_the_flag_and_after_its_delay);
    RUN(rejected_event_is_listed_by_dead_list);
    RUN(status_json_names_the_attached_subscription);
    RUN(publish_on_a_subscriber_connection_is_not_permitted_and_closes_it);
    RUN(local_refusals_send_nothing_and_keep_the_connection);
    RUN(both_role_publishes_while_deliveries_wait);
    RUN(nothing_is_allocated_after_connect);
    RUN(connect_to_a_missing_socket_says_what_to_do);
    daemon_stop(&shared);
    RUN(a_full_log_answers_full_and_keeps_the_connection);
    RUN(after_kill_9_unconfirmed_events_are_redelivered);
    int result = finish("test_daemon");
    if (result == 0) {
        nftw(scratch_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        fprintf(stderr, "test_daemon: kept %s (daemon logs: *-stderr-*.log)\n", scratch_dir);
    }
    return result;
}
