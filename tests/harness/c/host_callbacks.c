/*
 * The C half of the test host: the callbacks OpenVPN hands a plugin in
 * struct openvpn_plugin_callbacks (OPENVPN_PLUGINv3_STRUCTVER 5).
 *
 * plugin_log is printf-style and variadic, which stable Rust cannot define, so it lives here.
 * Each message is formatted with vsnprintf exactly as OpenVPN's plugin_vlog does and handed,
 * finished, to motp_harness_record_log() on the Rust side (tests/harness/src/abi/log.rs).
 * The base64 helpers follow OpenVPN's openvpn_base64_encode/decode contracts.
 */
/* clock_gettime under the strict C standard the build script asks for. */
#define _POSIX_C_SOURCE 199309L
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Only a pointer to the certificate type is ever used: keep OpenSSL out of the build. */
#define __OPENVPN_X509_CERT_T_DECLARED
typedef void openvpn_x509_cert_t;
#include <openvpn/openvpn-plugin.h>

/* Defined in Rust (abi.rs). `message` is the formatted text, valid only during the call. */
extern void motp_harness_record_log(int flags, const char *name, const char *message);

/* OpenVPN formats into a fixed buffer (ERR_BUF_SIZE, 10240 bytes in 2.6) and truncates. */
#define MOTP_TEST_LOG_BUF 10240

void motp_test_plugin_vlog(openvpn_plugin_log_flags_t flags, const char *name,
                           const char *format, va_list arglist)
{
    char buf[MOTP_TEST_LOG_BUF];
    if (format == NULL)
    {
        motp_harness_record_log((int)flags, name, "(NULL format)");
        return;
    }
    int n = vsnprintf(buf, sizeof(buf), format, arglist);
    if (n < 0)
    {
        motp_harness_record_log((int)flags, name, "(vsnprintf failed)");
        return;
    }
    motp_harness_record_log((int)flags, name, buf);
}

/* Nanoseconds spent inside motp_test_plugin_log so far, so the ABI bench can tell the host's
 * share of a call (formatting and writing the line, as OpenVPN would) from the plugin's. The
 * plugin calls it on the calling thread only, like OpenVPN requires. */
static unsigned long long host_log_ns;

unsigned long long motp_test_host_log_ns(void)
{
    return host_log_ns;
}

static unsigned long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

void motp_test_plugin_log(openvpn_plugin_log_flags_t flags, const char *name,
                          const char *format, ...)
{
    unsigned long long start = monotonic_ns();
    va_list arglist;
    va_start(arglist, format);
    motp_test_plugin_vlog(flags, name, format, arglist);
    va_end(arglist);
    host_log_ns += monotonic_ns() - start;
}

void motp_test_secure_memzero(void *data, size_t len)
{
    volatile unsigned char *p = (volatile unsigned char *)data;
    while (len--)
    {
        *p++ = 0;
    }
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes `size` bytes into a malloc()ed NUL-terminated string; returns its length or -1. */
int motp_test_base64_encode(const void *data, int size, char **str)
{
    const unsigned char *in = (const unsigned char *)data;
    if (size < 0 || str == NULL || (size > 0 && data == NULL))
    {
        return -1;
    }
    size_t out_len = ((size_t)size + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (out == NULL)
    {
        return -1;
    }
    size_t o = 0;
    for (int i = 0; i < size; i += 3)
    {
        unsigned int v = (unsigned int)in[i] << 16;
        if (i + 1 < size)
        {
            v |= (unsigned int)in[i + 1] << 8;
        }
        if (i + 2 < size)
        {
            v |= in[i + 2];
        }
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = (i + 1 < size) ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = (i + 2 < size) ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    *str = out;
    return (int)o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Decodes into `data` (at most `size` bytes); returns the decoded length, or -1. */
int motp_test_base64_decode(const char *str, void *data, int size)
{
    unsigned char *out = (unsigned char *)data;
    if (str == NULL || data == NULL || size < 0)
    {
        return -1;
    }
    size_t len = strlen(str);
    if (len % 4 != 0)
    {
        return -1;
    }
    int o = 0;
    for (size_t i = 0; i < len; i += 4)
    {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++)
        {
            char c = str[i + k];
            if (c == '=' && i + 4 == len && k >= 2)
            {
                v[k] = 0;
                pad++;
            }
            else if (pad > 0 || (v[k] = b64_value(c)) < 0)
            {
                return -1;
            }
        }
        unsigned int bits = (unsigned int)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        unsigned char bytes[3] = { (unsigned char)(bits >> 16), (unsigned char)(bits >> 8),
                                   (unsigned char)bits };
        for (int k = 0; k < 3 - pad; k++)
        {
            if (o >= size)
            {
                return -1;
            }
            out[o++] = bytes[k];
        }
    }
    return o;
}

/*
 * The callbacks as OpenVPN fills them in. Building this table makes the compiler check every
 * function above against the header's callback typedefs.
 */
static const struct openvpn_plugin_callbacks motp_test_callback_table = {
    .plugin_log = motp_test_plugin_log,
    .plugin_vlog = motp_test_plugin_vlog,
    .plugin_secure_memzero = motp_test_secure_memzero,
    .plugin_base64_encode = motp_test_base64_encode,
    .plugin_base64_decode = motp_test_base64_decode,
};

const struct openvpn_plugin_callbacks *motp_test_callbacks(void)
{
    return &motp_test_callback_table;
}
