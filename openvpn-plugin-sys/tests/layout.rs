//! Checks the hand-written bindings against the real `openvpn-plugin.h`.
//!
//! One list below names every struct, field, scalar type and constant. From it the test writes a
//! C program that prints `sizeof`, `_Alignof` and `offsetof` as the C compiler sees them through
//! the installed header, compiles it with the system C compiler, runs it, and compares each
//! number with what Rust computes for the same item. The list cannot silently fall behind either
//! side: a field that exists in Rust but not in C fails the C compile, and a Rust field missing
//! from the list fails the Rust compile (an exhaustive pattern is generated for each struct).
//!
//! The header is looked up in `$OPENVPN_PLUGIN_INCLUDE_DIR/openvpn/openvpn-plugin.h`, default
//! `/usr/include`. The C compiler is `$CC`, default `cc`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use openvpn_plugin_sys as sys;

/// `size_of` the type a field projection returns (so a field's size needs no type name).
fn field_size<S, F>(_project: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// Everything both sides must agree on, as `key -> number`, plus the C lines that print it.
#[derive(Default)]
struct Checks {
    rust: BTreeMap<String, i128>,
    c_body: String,
}

impl Checks {
    fn add(&mut self, key: String, rust_value: i128, c_expr: &str, c_cast: &str) {
        let fmt = if c_cast == "long long" { "%lld" } else { "%zu" };
        writeln!(
            self.c_body,
            "    printf(\"{key} {fmt}\\n\", ({c_cast})({c_expr}));"
        )
        .unwrap();
        assert!(
            self.rust.insert(key.clone(), rust_value).is_none(),
            "duplicate check {key}"
        );
    }

    fn size(&mut self, key: String, rust_value: usize, c_expr: &str) {
        self.add(key, rust_value as i128, c_expr, "size_t");
    }

    fn constant(&mut self, key: String, rust_value: i128, c_expr: &str) {
        self.add(key, rust_value, c_expr, "long long");
    }
}

/// For each `struct c_name => RustType { rust_field: "c_field", ... }`: size, alignment, and each
/// field's offset and size. Also emits, inside a never-called function, an exhaustive
/// destructuring of the Rust struct, so every Rust field has to be listed here.
macro_rules! structs {
    ($checks:ident; $( $c_name:literal => $rust:ident { $( $field:ident : $c_field:literal ),* $(,)? } )*) => {
        $(
            {
                #[allow(dead_code)]
                fn every_rust_field_is_listed(s: &sys::$rust) {
                    let sys::$rust { $( $field: _ ),* } = s;
                }
                let c_type = concat!("struct ", $c_name);
                $checks.size(format!("sizeof({})", $c_name), size_of::<sys::$rust>(), &format!("sizeof({c_type})"));
                $checks.size(format!("alignof({})", $c_name), align_of::<sys::$rust>(), &format!("_Alignof({c_type})"));
                $(
                    $checks.size(
                        format!("offsetof({}, {})", $c_name, $c_field),
                        offset_of!(sys::$rust, $field),
                        &format!("offsetof({c_type}, {})", $c_field),
                    );
                    $checks.size(
                        format!("sizeof({}.{})", $c_name, $c_field),
                        field_size(|s: &sys::$rust| &s.$field),
                        &format!("sizeof((({c_type} *)0)->{})", $c_field),
                    );
                )*
            }
        )*
    };
}

/// Scalar and function-pointer typedefs: size and alignment.
macro_rules! typedefs {
    ($checks:ident; $( $rust:ident ),* $(,)?) => {
        $(
            $checks.size(format!("sizeof({})", stringify!($rust)), size_of::<sys::$rust>(), &format!("sizeof({})", stringify!($rust)));
            $checks.size(format!("alignof({})", stringify!($rust)), align_of::<sys::$rust>(), &format!("_Alignof({})", stringify!($rust)));
        )*
    };
}

/// Constants: `RUST_NAME` (same name in C) or `RUST_NAME = "C_NAME"`.
macro_rules! constants {
    ($checks:ident; $( $rust:ident $(= $c:literal)? ),* $(,)?) => {
        $(
            {
                let c_name = constants!(@c $rust $($c)?);
                $checks.constant(format!("{c_name}"), sys::$rust as i128, c_name);
            }
        )*
    };
    (@c $rust:ident $c:literal) => { $c };
    (@c $rust:ident) => { stringify!($rust) };
}

fn all_checks() -> Checks {
    let mut checks = Checks::default();
    structs! { checks;
        "openvpn_plugin_string_list" => openvpn_plugin_string_list {
            next: "next", name: "name", value: "value",
        }
        "openvpn_plugin_callbacks" => openvpn_plugin_callbacks {
            plugin_log: "plugin_log",
            plugin_vlog: "plugin_vlog",
            plugin_secure_memzero: "plugin_secure_memzero",
            plugin_base64_encode: "plugin_base64_encode",
            plugin_base64_decode: "plugin_base64_decode",
        }
        "openvpn_plugin_args_open_in" => openvpn_plugin_args_open_in {
            type_mask: "type_mask",
            argv: "argv",
            envp: "envp",
            callbacks: "callbacks",
            ssl_api: "ssl_api",
            ovpn_version: "ovpn_version",
            ovpn_version_major: "ovpn_version_major",
            ovpn_version_minor: "ovpn_version_minor",
            ovpn_version_patch: "ovpn_version_patch",
        }
        "openvpn_plugin_args_open_return" => openvpn_plugin_args_open_return {
            type_mask: "type_mask", handle: "handle", return_list: "return_list",
        }
        "openvpn_plugin_args_func_in" => openvpn_plugin_args_func_in {
            type_: "type",
            argv: "argv",
            envp: "envp",
            handle: "handle",
            per_client_context: "per_client_context",
            current_cert_depth: "current_cert_depth",
            current_cert: "current_cert",
        }
        "openvpn_plugin_args_func_return" => openvpn_plugin_args_func_return {
            return_list: "return_list",
        }
    }
    typedefs! { checks;
        openvpn_plugin_handle_t,
        openvpn_plugin_log_flags_t,
        ovpnSSLAPI,
        plugin_log_t,
        plugin_vlog_t,
        plugin_secure_memzero_t,
        plugin_base64_encode_t,
        plugin_base64_decode_t,
    }
    constants! { checks;
        OPENVPN_PLUGIN_VERSION,
        OPENVPN_PLUGINV3_STRUCTVER = "OPENVPN_PLUGINv3_STRUCTVER",
        OPENVPN_PLUGIN_UP,
        OPENVPN_PLUGIN_DOWN,
        OPENVPN_PLUGIN_ROUTE_UP,
        OPENVPN_PLUGIN_IPCHANGE,
        OPENVPN_PLUGIN_TLS_VERIFY,
        OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY,
        OPENVPN_PLUGIN_CLIENT_CONNECT,
        OPENVPN_PLUGIN_CLIENT_DISCONNECT,
        OPENVPN_PLUGIN_LEARN_ADDRESS,
        OPENVPN_PLUGIN_CLIENT_CONNECT_V2,
        OPENVPN_PLUGIN_TLS_FINAL,
        OPENVPN_PLUGIN_ROUTE_PREDOWN,
        OPENVPN_PLUGIN_CLIENT_CONNECT_DEFER,
        OPENVPN_PLUGIN_CLIENT_CONNECT_DEFER_V2,
        OPENVPN_PLUGIN_CLIENT_CRRESPONSE,
        OPENVPN_PLUGIN_N,
        OPENVPN_PLUGIN_FUNC_SUCCESS,
        OPENVPN_PLUGIN_FUNC_ERROR,
        OPENVPN_PLUGIN_FUNC_DEFERRED,
        OPENVPN_PLUGIN_INIT_PRE_CONFIG_PARSE,
        OPENVPN_PLUGIN_INIT_PRE_DAEMON,
        OPENVPN_PLUGIN_INIT_POST_DAEMON,
        OPENVPN_PLUGIN_INIT_POST_UID_CHANGE,
        PLOG_ERR,
        PLOG_WARN,
        PLOG_NOTE,
        PLOG_DEBUG,
        PLOG_ERRNO,
        PLOG_NOMUTE,
        SSLAPI_NONE,
        SSLAPI_OPENSSL,
        SSLAPI_MBEDTLS,
    }
    for event in 0..sys::OPENVPN_PLUGIN_N {
        checks.constant(
            format!("OPENVPN_PLUGIN_MASK({event})"),
            sys::openvpn_plugin_mask(event) as i128,
            &format!("OPENVPN_PLUGIN_MASK({event})"),
        );
    }
    checks
}

/// The directory that holds `openvpn/openvpn-plugin.h`, or a panic saying how to get it.
fn include_dir() -> PathBuf {
    let dir = std::env::var_os("OPENVPN_PLUGIN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = dir.join("openvpn/openvpn-plugin.h");
    assert!(
        header.is_file(),
        "OpenVPN's plugin header {} was not found, so the bindings cannot be checked against it. \
         Install it with `apt-get install openvpn` (Debian/Ubuntu ship the header in the openvpn \
         package), or point OPENVPN_PLUGIN_INCLUDE_DIR at the directory holding \
         openvpn/openvpn-plugin.h.",
        header.display()
    );
    dir
}

fn c_program(body: &str) -> String {
    format!(
        r#"/* Generated by openvpn-plugin-sys/tests/layout.rs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
/* The plugin API only ever uses a pointer to the certificate: keep OpenSSL out of the test. */
#define __OPENVPN_X509_CERT_T_DECLARED
typedef void openvpn_x509_cert_t;
#include <openvpn/openvpn-plugin.h>

int main(void)
{{
{body}    return 0;
}}
"#
    )
}

/// Compiles and runs the program; returns its output as `key -> number`.
fn run_c(work: &Path, include: &Path, source: &str) -> BTreeMap<String, i128> {
    std::fs::create_dir_all(work.join("stub/openssl")).unwrap();
    // The header includes <openssl/x509.h> unconditionally; an empty stand-in is enough since
    // openvpn_x509_cert_t is declared above.
    std::fs::write(
        work.join("stub/openssl/x509.h"),
        "/* stand-in: see layout.rs */\n",
    )
    .unwrap();
    let c_file = work.join("layout.c");
    let exe = work.join("layout");
    std::fs::write(&c_file, source).unwrap();

    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(work.join("stub"))
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&exe)
        .arg(&c_file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler {cc:?}: {e}; install one (`apt-get install gcc`) or \
                 set CC"
            )
        });
    assert!(
        output.status.success(),
        "compiling {} against {}/openvpn/openvpn-plugin.h failed; a field listed in layout.rs \
         probably does not exist in the header:\n{}",
        c_file.display(),
        include.display(),
        String::from_utf8_lossy(&output.stderr)
    );

    let output = Command::new(&exe).output().expect("run the layout program");
    assert!(output.status.success(), "{} failed", exe.display());
    String::from_utf8(output.stdout)
        .expect("the layout program prints ASCII")
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("`key value` lines");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn bindings_match_the_installed_header() {
    let include = include_dir();
    let checks = all_checks();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openvpn-plugin-sys-layout");
    let c = run_c(&work, &include, &c_program(&checks.c_body));

    let mut mismatches = Vec::new();
    for (key, &rust) in &checks.rust {
        match c.get(key) {
            Some(&c_value) if c_value == rust => {}
            Some(&c_value) => mismatches.push(format!("{key}: C says {c_value}, Rust says {rust}")),
            None => mismatches.push(format!("{key}: the C program did not print it")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "openvpn-plugin-sys disagrees with {}/openvpn/openvpn-plugin.h:\n  {}",
        include.display(),
        mismatches.join("\n  ")
    );
    assert_eq!(c.len(), checks.rust.len());
    // Sanity: the comparison really covered the six structs and the event table.
    assert!(checks.rust.len() > 100, "only {} checks", checks.rust.len());
}

/// The numbers the plugin relies on, spelled out, so a wrong constant in both the header and the
/// bindings (e.g. a header from another OpenVPN line) still shows up here.
#[test]
fn constants_the_plugin_relies_on() {
    assert_eq!(sys::OPENVPN_PLUGINV3_STRUCTVER, 5);
    assert_eq!(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, 5);
    assert_eq!(sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE, 15);
    assert_eq!(
        (
            sys::OPENVPN_PLUGIN_FUNC_SUCCESS,
            sys::OPENVPN_PLUGIN_FUNC_ERROR,
            sys::OPENVPN_PLUGIN_FUNC_DEFERRED
        ),
        (0, 1, 2)
    );
    assert_eq!(
        sys::openvpn_plugin_mask(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY),
        0x20
    );
}
