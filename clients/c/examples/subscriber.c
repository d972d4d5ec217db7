/*
 * subscriber: print events from herald as they are delivered, one line each, and
 * confirm each once printed.
 *
 *   subscriber [-s SOCKET] [-d DURABLE_NAME] [-p MIN_SEVERITY] [-c COUNT] PATTERN...
 *
 * With -d the subscription is durable: what was not confirmed is delivered again on
 * the next run, flagged "(redelivered)". Without it, only events stored while it runs
 * are seen. After a daemon crash a durable subscription is recovering: the replay
 * ends with RecoveryDone, after which this program says it has recovered. Stops after
 * COUNT events, or on SIGINT/SIGTERM, leaving with Goodbye. Exit status 0, 1 failure,
 * 2 usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* getopt, sigaction: this example is POSIX; herald.h is plain C11 */
#endif

#include <herald.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

static int usage(void) {
    fprintf(stderr, "usage: subscriber [-s SOCKET] [-d DURABLE_NAME] [-p MIN_SEVERITY 0..7] [-c COUNT] PATTERN...\n"
                    "  patterns: fs.*.error (one segment), fs.> (one or more), > (everything)\n");
    return 2;
}

static int fail(herald_client *client) {
    fprintf(stderr, "subscriber: %s\n", herald_last_error(client)->message);
    herald_close(client);
    return 1;
}

int main(int argc, char **argv) {
    const char *socket_path = HERALD_DEFAULT_SOCKET_PATH;
    herald_subscription subscription;
    herald_subscription_init(&subscription);
    long count_max = -1;
    int option;
    while ((option = getopt(argc, argv, "s:d:p:c:h")) != -1) {
        switch (option) {
        case 's': socket_path = optarg; break;
        case 'd': subscription.name = optarg; break;
        case 'p': subscription.min_severity = (uint8_t)atoi(optarg); break;
        case 'c': count_max = atol(optarg); break;
        default: return usage();
        }
    }
    if (optind >= argc || (size_t)(argc - optind) > HERALD_SUBSCRIPTION_PATTERNS_MAX) {
        return usage();
    }
    subscription.patterns = (const char *const *)(argv + optind);
    subscription.pattern_count = (size_t)(argc - optind);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    herald_client *client = NULL;
    if (herald_connect(socket_path, HERALD_ROLE_SUBSCRIBER, "subscriber-example", NULL, &client) != HERALD_OK) {
        if (client == NULL) {
            fprintf(stderr, "subscriber: out of memory\n");
            return 1;
        }
        return fail(client);
    }
    herald_subscribed subscribed;
    if (herald_subscribe(client, &subscription, &subscribed) != HERALD_OK) {
        return fail(client);
    }
    fprintf(stderr, "subscriber: subscribed%s, %llu events waiting\n",
            subscribed.recovering ? " (recovering after a crash)" : "",
            (unsigned long long)subscribed.pending_events);

    long received = 0;
    while (!stop_requested && (count_max < 0 || received < count_max)) {
        herald_delivery delivery;
        /* A bounded wait, so that a signal is noticed within a second. */
        herald_status status = herald_receive(client, &delivery, 1000);
        if (status == HERALD_E_TIMEOUT) {
            continue;
        }
        if (status != HERALD_OK) {
            return fail(client);
        }
        if (delivery.kind == HERALD_DELIVERY_RECOVERY_DONE) {
            /* Every replayed event has been printed and confirmed: nothing more to do
             * to recover, so say so and let new events come. */
            if (herald_recovered(client) != HERALD_OK) {
                return fail(client);
            }
            fprintf(stderr, "subscriber: recovery done\n");
            continue;
        }
        printf("%llu %s severity=%u source=%s%s %.*s\n", (unsigned long long)delivery.seq, delivery.topic,
               delivery.severity, delivery.source, delivery.redelivered ? " (redelivered)" : "",
               (int)delivery.payload_len, delivery.payload != NULL ? (const char *)delivery.payload : "");
        fflush(stdout);
        if (herald_confirm(client, delivery.seq, delivery.seq) != HERALD_OK) {
            return fail(client);
        }
        received++;
    }
    (void)herald_goodbye(client);
    herald_close(client);
    return 0;
}
