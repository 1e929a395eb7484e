/* A plugin_log callback for the func_v3 fuzz target, with OpenVPN's variadic printf-like
 * signature. It prints nothing unless MOTP_FUZZ_LOG=1 is set (useful when reproducing a crash),
 * so a fuzz run is not dominated by writing log lines; the plugin still formats and sanitizes
 * every line before calling it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void motp_fuzz_plugin_log(int flags, const char *plugin_name, const char *format, ...)
{
    static int enabled = -1;
    if (enabled < 0) {
        const char *v = getenv("MOTP_FUZZ_LOG");
        enabled = v != NULL && strcmp(v, "1") == 0;
    }
    if (!enabled) {
        return;
    }
    va_list ap;
    va_start(ap, format);
    fprintf(stderr, "PLUGIN_LOG[%s] %d: ", plugin_name, flags);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
}
