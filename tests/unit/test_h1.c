/* test_h1.c -- which upstream urls the gateway's own HTTP/1.1 client serves (http:// at an IP
 * literal) and the address and Host authority it takes from them; everything else stays with
 * libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "gateway/h1.h"

static void yes(const char *url, int family, const char *ip, unsigned port, const char *authority)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    size_t off = 0, an = 0;
    assert_int_equal(pg_h1_url_addr(url, &ss, &len, &off, &an), 0);
    assert_int_equal(ss.ss_family, family);
    char got[64];
    if (family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        assert_int_equal(len, sizeof *s4);
        assert_int_equal(ntohs(s4->sin_port), port);
        assert_non_null(inet_ntop(AF_INET, &s4->sin_addr, got, sizeof got));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        assert_int_equal(len, sizeof *s6);
        assert_int_equal(ntohs(s6->sin6_port), port);
        assert_non_null(inet_ntop(AF_INET6, &s6->sin6_addr, got, sizeof got));
    }
    assert_string_equal(got, ip);
    assert_int_equal(an, strlen(authority));
    assert_memory_equal(url + off, authority, an);
}

static void no(const char *url)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    size_t off = 0, an = 0;
    assert_int_equal(pg_h1_url_addr(url, &ss, &len, &off, &an), -1);
}

static void ip_literals(void **state)
{
    (void)state;
    yes("http://127.0.0.1:9101", AF_INET, "127.0.0.1", 9101, "127.0.0.1:9101");
    yes("http://127.0.0.1:9101/v2", AF_INET, "127.0.0.1", 9101, "127.0.0.1:9101");
    yes("http://10.1.2.3", AF_INET, "10.1.2.3", 80, "10.1.2.3");
    yes("http://10.1.2.3/api/external/v1", AF_INET, "10.1.2.3", 80, "10.1.2.3");
    yes("http://[::1]:8080/x", AF_INET6, "::1", 8080, "[::1]:8080");
    yes("http://[2001:db8::7]", AF_INET6, "2001:db8::7", 80, "[2001:db8::7]");
    yes("http://127.0.0.1:65535", AF_INET, "127.0.0.1", 65535, "127.0.0.1:65535");
}

static void left_to_curl(void **state)
{
    (void)state;
    no("https://127.0.0.1:9101");      /* TLS */
    no("http://localhost:9101");       /* a name: curl resolves it */
    no("http://panel.example.com");    /* a name */
    no("http://user:pw@127.0.0.1:80"); /* user info: curl's basic auth */
    no("http://127.0.0.1:0");
    no("http://127.0.0.1:65536");
    no("http://127.0.0.1:");
    no("http://127.0.0.1:80x");
    no("http://127.0.0.1:123456");
    no("http://[::1]x:80");
    no("http://[::1");
    no("http://[127.0.0.1]:80"); /* brackets are for IPv6 */
    no("http://::1:80");         /* IPv6 needs brackets */
    no("http://127.1:80");       /* inet_pton refuses the short forms a resolver would take */
    no("http://");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ip_literals),
        cmocka_unit_test(left_to_curl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
