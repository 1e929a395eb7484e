/*
 * Lifecycle check for motp.so, run the way OpenVPN runs plugins: dlopen, open_v3, one
 * AUTH_USER_PASS_VERIFY, close_v1, dlclose; CYCLES times (SIGHUP does exactly this).
 * After every close the process must have no thread besides the main one.
 *
 * Build: cc -Wall -Wextra -Werror -o lifecycle lifecycle.c -ldl
 * Usage: lifecycle PLUGIN.so MOTP.toml CYCLES
 */
#include <dirent.h>
#include <unistd.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define __OPENVPN_X509_CERT_T_DECLARED
typedef void openvpn_x509_cert_t;
#include <openvpn-plugin.h>

static void host_vlog(openvpn_plugin_log_flags_t flags, const char *name, const char *fmt, va_list ap)
{
    (void)flags;
    (void)name;
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
}

static void host_log(openvpn_plugin_log_flags_t flags, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_vlog(flags, name, fmt, ap);
    va_end(ap);
}

static int thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PLUGIN.so MOTP.toml CYCLES\n", argv[0]);
        return 2;
    }
    int cycles = atoi(argv[3]);
    struct openvpn_plugin_callbacks callbacks = { host_log, host_vlog, NULL, NULL, NULL };
    const char *plugin_argv[] = { argv[1], argv[2], NULL };
    const char *open_envp[] = { "verb=4", NULL };
    const char *auth_envp[] = {
        "username=alice", "password=000000", "common_name=alice", "untrusted_ip=127.0.0.1",
        "untrusted_port=40000", "script_type=user-pass-verify", NULL,
    };
    int rejected = 0;
    for (int i = 0; i < cycles; i++) {
        void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!so) {
            fprintf(stderr, "cycle %d: dlopen: %s\n", i, dlerror());
            return 1;
        }
        int (*open_v3)(const int, struct openvpn_plugin_args_open_in const *, struct openvpn_plugin_args_open_return *) =
            (int (*)(const int, struct openvpn_plugin_args_open_in const *, struct openvpn_plugin_args_open_return *))dlsym(so, "openvpn_plugin_open_v3");
        int (*func_v3)(const int, struct openvpn_plugin_args_func_in const *, struct openvpn_plugin_args_func_return *) =
            (int (*)(const int, struct openvpn_plugin_args_func_in const *, struct openvpn_plugin_args_func_return *))dlsym(so, "openvpn_plugin_func_v3");
        void (*close_v1)(openvpn_plugin_handle_t) = (void (*)(openvpn_plugin_handle_t))dlsym(so, "openvpn_plugin_close_v1");
        if (!open_v3 || !func_v3 || !close_v1) {
            fprintf(stderr, "cycle %d: missing entry point\n", i);
            return 1;
        }
        struct openvpn_plugin_args_open_in open_in = {
            OPENVPN_PLUGIN_MASK(OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY), plugin_argv, open_envp, &callbacks,
            SSLAPI_OPENSSL, "2.6.14", 2, 6, ".14",
        };
        struct openvpn_plugin_args_open_return open_ret;
        memset(&open_ret, 0, sizeof open_ret);
        if (open_v3(OPENVPN_PLUGINv3_STRUCTVER, &open_in, &open_ret) != OPENVPN_PLUGIN_FUNC_SUCCESS || !open_ret.handle) {
            fprintf(stderr, "cycle %d: open_v3 failed\n", i);
            return 1;
        }
        struct openvpn_plugin_args_func_in func_in = {
            OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, plugin_argv, auth_envp, open_ret.handle, NULL, 0, NULL,
        };
        struct openvpn_plugin_args_func_return func_ret = { NULL };
        if (func_v3(OPENVPN_PLUGINv3_STRUCTVER, &func_in, &func_ret) == OPENVPN_PLUGIN_FUNC_ERROR)
            rejected++;
        close_v1(open_ret.handle);
        /* pthread_join returns once the kernel has cleared the thread's tid, which is just
         * before the exiting task leaves /proc/self/task (a window valgrind widens): a joined
         * thread is gone within milliseconds, a leaked one stays. Wait up to 2 s. */
        int threads = thread_count();
        for (int wait = 0; threads != 1 && wait < 200; wait++) {
            usleep(10000);
            threads = thread_count();
        }
        if (threads != 1) {
            fprintf(stderr, "cycle %d: %d threads alive after close_v1 (expected 1)\n", i, threads);
            return 1;
        }
        if (dlclose(so) != 0) {
            fprintf(stderr, "cycle %d: dlclose: %s\n", i, dlerror());
            return 1;
        }
    }
    if (rejected != cycles) {
        fprintf(stderr, "expected every wrong code to be rejected, got %d of %d\n", rejected, cycles);
        return 1;
    }
    printf("lifecycle: %d dlopen/open/auth/close/dlclose cycles, %d rejections as expected, 1 thread after every close\n",
           cycles, rejected);
    return 0;
}
