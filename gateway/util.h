/* util.h -- small shared helpers: monotonic clock, logging, byte-string compares, hex, a string
 * built in a fixed buffer. */
#ifndef PG_UTIL_H
#define PG_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct event;

/* The struct of type holding member at p: intrusive links back to their owner. */
#define PG_CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* An intrusive doubly-linked list: a pg_dlink embedded in each element (PG_CONTAINER_OF gets
 * the element back), a pg_dlist held by the list's owner; zeroed, both are empty and unlinked.
 * Nothing here locks or allocates: each owner says what guards its list. Whether an element is
 * listed is the element's own business (most keep a pointer to the owner, set while listed):
 * links alone cannot tell a lone element from an unlinked one. */
struct pg_dlink {
    struct pg_dlink *prev, *next;
};
struct pg_dlist {
    struct pg_dlink *head, *tail;
};

/* Append n (on no list) to l. */
static inline void pg_dlist_push_tail(struct pg_dlist *l, struct pg_dlink *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* Prepend n (on no list) to l. */
static inline void pg_dlist_push_head(struct pg_dlist *l, struct pg_dlink *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* Take n off l, the list it is on; its links are cleared. */
static inline void pg_dlist_remove(struct pg_dlist *l, struct pg_dlink *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* Monotonic milliseconds; never jumps with the wall clock. */
uint64_t pg_now_ms(void);

/* Wall-clock milliseconds since the epoch: only for times other hosts read (rsess.h). */
uint64_t pg_wall_ms(void);

/* A clock a module with timed state reads (limit, auth): monotonic ms, arg is the clock's own
 * state. pg_clock_mono is pg_now_ms (arg unused); unit tests hand in a fake one. */
typedef uint64_t pg_clock_fn(void *arg);
uint64_t pg_clock_mono(void *arg);

/* event_add with a timeout of ms milliseconds; event_add's result (0 or -1). */
int pg_event_add_ms(struct event *ev, uint64_t ms);

enum pg_log_level { PG_LOG_ERR, PG_LOG_WARN, PG_LOG_INFO };

/* One line to stderr with a UTC timestamp and level. Callers never pass secrets. */
void pg_log(enum pg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Case-insensitive compare of the byte string (p, n) with the NUL-terminated s. Inline: s is
 * almost always a literal, so its length folds to a constant and most calls end at the length
 * compare (response headers are matched against many names). */
static inline bool pg_ieq(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp(p, s, n) == 0;
}

/* Does (p, n) start with the NUL-terminated prefix, case-insensitively? */
static inline bool pg_iprefix(const char *p, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n >= pn && strncasecmp(p, prefix, pn) == 0;
}

/* A string built in a caller's fixed buffer, for lines and headers made on every request
 * without printf's format parsing. Once a piece does not fit, the rest are skipped and `over`
 * says the result is unusable; one byte is always kept for the NUL pg_sb_end writes. */
struct pg_sb {
    char *p;
    size_t len, cap;
    bool over;
};

static inline struct pg_sb pg_sb_of(char *p, size_t cap)
{
    return (struct pg_sb){ p, 0, cap, cap == 0 };
}
static inline void pg_sb_put(struct pg_sb *b, const char *s, size_t n)
{
    if (b->over || n >= b->cap - b->len) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static inline void pg_sb_str(struct pg_sb *b, const char *s)
{
    pg_sb_put(b, s, strlen(s));
}
/* v in decimal, at least width digits (zero-padded). */
void pg_sb_u64(struct pg_sb *b, uint64_t v, unsigned width);
/* ms since the epoch as RFC 3339 UTC: "2024-05-01T12:34:56Z", with frac "...56.789Z". */
void pg_sb_time(struct pg_sb *b, uint64_t ms, bool frac);
/* NUL-terminate; the length is b->len. False (and "" in the buffer) when something did not
 * fit. */
bool pg_sb_end(struct pg_sb *b);

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void pg_hex(const uint8_t *in, size_t n, char *out);

/* Value of a hex digit, -1 if c is not one. */
int pg_hexval(int c);

/* Is c an RFC 3986 unreserved character (ALPHA DIGIT - . _ ~)? */
bool pg_unreserved(int c);

/* Trim spaces and tabs at both ends of (*p, *n). */
void pg_trim(const char **p, size_t *n);

#endif
