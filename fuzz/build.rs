//! Compiles `src/log_sink.c`: a no-op `plugin_log` callback for the `func_v3` target.
//! OpenVPN's `plugin_log` is variadic, which stable Rust can declare but not define.

fn main() {
    println!("cargo:rerun-if-changed=src/log_sink.c");
    cc::Build::new()
        .file("src/log_sink.c")
        .warnings(true)
        .compile("motp_fuzz_log_sink");
}
