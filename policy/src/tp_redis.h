/*
 * tp_redis.h - internal interface of redis.c, shared with the store's
 * files (store_int.h).
 *
 * A tp__redis is a command connection that many threads share (a mutex
 * serializes commands), reconnecting lazily with backoff.  The store's
 * subscriber connection is a plain redisContext made with
 * tp__redis_connect and owned by the store thread.
 */
#ifndef TP_REDIS_H
#define TP_REDIS_H

#include "tp_internal.h"

#include <hiredis.h>

typedef struct tp__redis tp__redis;

/* NULL on allocation failure.  Nothing is connected yet. */
tp__redis *tp__redis_new(const char *host, int port, const char *password,
                         int timeout_ms, tp_log_fn log, void *log_ud);
void tp__redis_free(tp__redis *r);

/* A new authenticated connection with r's settings, or NULL (err). */
redisContext *tp__redis_connect(const tp__redis *r, tp_error *err);

/* Run one argv-style command.  Returns the reply (caller frees with
 * freeReplyObject) or NULL with err = TP_EREDIS (also for error
 * replies). */
redisReply *tp__redis_cmd(tp__redis *r, int argc, const char **argv,
                          const size_t *lens, tp_error *err);

/* Run n argv-style commands in one round trip (pipelined): command i is
 * argc[i] arguments argv[i][..] of lens[i][..].  replies[i] receives its
 * reply (error replies included; the caller frees each, NULL ok).
 * Returns TP_OK when every command was answered, else TP_EREDIS (err
 * filled; the connection is reset and replies[] are all NULL). */
tp_status tp__redis_pipeline(tp__redis *r, size_t n, const int *argc,
                             const char *const *const *argv,
                             const size_t *const *lens, redisReply **replies,
                             tp_error *err);

#endif /* TP_REDIS_H */
