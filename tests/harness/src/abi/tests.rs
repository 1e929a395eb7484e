use std::ffi::{c_char, c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::sync::Arc;

use super::log::{lock, Capture, Recorder};
use super::*;

#[test]
fn c_plugin_log_formats_and_records_on_the_calling_thread() {
    let recorder: Recorder = Arc::default();
    {
        let _capture = Capture::start(&recorder);
        // SAFETY: the format takes exactly one C string and one int, both supplied.
        unsafe {
            motp_test_plugin_log(
                sys::PLOG_WARN | sys::PLOG_NOMUTE,
                c"motp".as_ptr(),
                c"%s=%d".as_ptr(),
                c"answer".as_ptr(),
                42 as c_int,
            )
        };
    }
    let lines = lock(&recorder).clone();
    assert_eq!(
        lines,
        vec![LogLine {
            flags: sys::PLOG_WARN | sys::PLOG_NOMUTE,
            name: "motp".into(),
            message: "answer=42".into(),
        }]
    );
    assert_eq!(lines[0].to_string(), "WARN|NOMUTE motp: answer=42");
}

#[test]
fn c_base64_and_memzero_follow_openvpn_contracts() {
    let callbacks = host_callbacks();
    let encode = callbacks.plugin_base64_encode.expect("encode set");
    let decode = callbacks.plugin_base64_decode.expect("decode set");
    for (plain, b64) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"6ed4e4", "NmVkNGU0"),
    ] {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: valid input buffer and out-pointer.
        let n = unsafe { encode(plain.as_ptr().cast(), plain.len() as c_int, &mut out) };
        // SAFETY: encode returned a malloc()ed NUL-terminated string.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: the C side allocated it with malloc; free it the same way.
        unsafe { libc_free(out.cast()) };
        assert_eq!((n as usize, text.as_str()), (b64.len(), b64));

        let input = CString::new(b64).unwrap();
        let mut buf = [0u8; 16];
        // SAFETY: NUL-terminated input and a writable buffer of the given size.
        let n = unsafe { decode(input.as_ptr(), buf.as_mut_ptr().cast(), 16) };
        assert_eq!(&buf[..n as usize], plain);
    }
    let mut small = [0u8; 2];
    // SAFETY: as above; the output does not fit, which must be reported, not overflowed.
    let n = unsafe { decode(c"Zm9v".as_ptr(), small.as_mut_ptr().cast(), 2) };
    assert_eq!(n, -1);
    // SAFETY: as above.
    let n = unsafe { decode(c"Zm9v!".as_ptr(), small.as_mut_ptr().cast(), 2) };
    assert_eq!(n, -1);

    let mut secret = *b"0123456789abcdef";
    // SAFETY: the pointer and length describe `secret`.
    unsafe {
        callbacks.plugin_secure_memzero.expect("memzero set")(
            secret.as_mut_ptr().cast(),
            secret.len(),
        )
    };
    assert_eq!(secret, [0; 16]);
    assert!(callbacks.plugin_log.is_some() && callbacks.plugin_vlog.is_some());
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut std::ffi::c_void);
}

#[test]
fn env_set_replaces_in_place_and_get_reads_the_first() {
    let dir = std::env::temp_dir();
    let env = Env::openvpn_auth(&dir, "alice", "123456");
    assert_eq!(env.entries()[0], b"username=alice");
    assert_eq!(env.entries()[1], b"password=123456");
    assert!(env.len() >= 20);
    let env = env.with("password", "abcdef").without("common_name");
    assert_eq!(env.entries()[1], b"password=abcdef");
    assert_eq!(env.get("common_name"), None);
    assert_eq!(env.get("X509_0_CN"), Some(&b"alice"[..]));
    let reason = env.auth_failed_reason_file().unwrap();
    assert_eq!(env.client_reason(), "");
    for name in [
        "auth_control_file",
        "auth_pending_file",
        "auth_failed_reason_file",
    ] {
        let _ = std::fs::remove_file(std::ffi::OsStr::from_bytes(env.get(name).unwrap()));
    }
    assert!(!reason.exists());
}
