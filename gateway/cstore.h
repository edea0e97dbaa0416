/* cstore.h -- the rate_limit_store part of the config loader (conf.c calls these). */
#ifndef PG_CSTORE_H
#define PG_CSTORE_H

#include <stddef.h>

#include "conf.h"
#include "cwalk.h"

/* The rate_limit_store mapping v into the struct pg_conf at base (a cwalk setter). */
int pg_conf_set_store(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base);

/* A session adapter with the redis store needs session_key: 0 ok, -1 with the message. */
int pg_conf_redis_needs_key(const struct pg_conf *c, char *err, size_t cap);

#endif
