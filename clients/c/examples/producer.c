/*
 * producer: publish events to herald and print the sequence number of each once the
 * daemon has stored it durably.
 *
 *   producer [-s SOCKET] [-n NAME] [-p SEVERITY] TOPIC [MESSAGE...]
 *
 * Each MESSAGE is one event; with none, each line of standard input is one. Every
 * event carries an idempotency key (NAME-PID-N), so publishing it again after a lost
 * reply can never store it twice. Exit status: 0 all stored, 75 the log is full
 * (retry later), 1 any other failure, 2 usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* getopt, sigaction: this example is POSIX; herald.h is plain C11 */
#endif

#include <herald.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void) {
    fprintf(stderr, "usage: producer [-s SOCKET] [-n NAME] [-p SEVERITY 0..7] TOPIC [MESSAGE...]\n"
                    "  publishes each MESSAGE (or each line of stdin) to TOPIC; prints `stored SEQ` per event\n");
    return 2;
}

/* Publish one event; prints its seq. Returns the process exit status for a failure, or 0. */
static int publish_line(herald_client *client, const char *topic, int severity, const char *name,
                        unsigned long number, const char *text, size_t text_len) {
    char key[HERALD_KEY_BYTES_MAX + 1];
    int key_len = snprintf(key, sizeof key, "%s-%ld-%lu", name, (long)getpid(), number);
    herald_event event;
    memset(&event, 0, sizeof event);
    event.topic = topic;
    event.severity = (uint8_t)severity;
    event.key = key;
    event.key_len = key_len > 0 && (size_t)key_len < sizeof key ? (size_t)key_len : 0;
    event.payload = text;
    event.payload_len = text_len;
    uint64_t seq = 0;
    herald_status status = herald_publish(client, &event, &seq);
    if (status == HERALD_OK) {
        printf("stored %llu\n", (unsigned long long)seq);
        return 0;
    }
    fprintf(stderr, "producer: %s\n", herald_last_error(client)->message);
    return status == HERALD_E_FULL ? 75 : 1;
}

int main(int argc, char **argv) {
    const char *socket_path = HERALD_DEFAULT_SOCKET_PATH;
    const char *name = "producer-example";
    int severity = HERALD_SEVERITY_INFO;
    int option;
    while ((option = getopt(argc, argv, "s:n:p:h")) != -1) {
        switch (option) {
        case 's': socket_path = optarg; break;
        case 'n': name = optarg; break;
        case 'p': severity = atoi(optarg); break;
        default: return usage();
        }
    }
    if (optind >= argc || severity < 0 || severity > 7) {
        return usage();
    }
    const char *topic = argv[optind++];
    if (!herald_topic_is_valid(topic)) {
        fprintf(stderr, "producer: \"%s\" is not a topic: dot-separated segments of A-Z a-z 0-9 _ -\n", topic);
        return 2;
    }

    herald_client *client = NULL;
    if (herald_connect(socket_path, HERALD_ROLE_PRODUCER, name, NULL, &client) != HERALD_OK) {
        fprintf(stderr, "producer: %s\n", client != NULL ? herald_last_error(client)->message : "out of memory");
        herald_close(client);
        return 1;
    }
    int result = 0;
    unsigned long number = 0;
    if (optind < argc) {
        for (int i = optind; i < argc && result == 0; i++) {
            result = publish_line(client, topic, severity, name, ++number, argv[i], strlen(argv[i]));
        }
    } else {
        /* A line is at most one payload; longer lines are refused by the library. */
        static char line[HERALD_EVENT_PAYLOAD_BYTES_MAX + 2];
        while (result == 0 && fgets(line, sizeof line, stdin) != NULL) {
            size_t len = strcspn(line, "\n");
            result = publish_line(client, topic, severity, name, ++number, line, len);
        }
    }
    fflush(stdout);
    if (herald_is_open(client)) {
        (void)herald_goodbye(client);
    }
    herald_close(client);
    return result;
}
