//! Proves that secrets, PINs and codes are wiped before their memory goes back to the
//! allocator: a global allocator scans every block as it is freed and records whether it still
//! held one of the test's secret byte strings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const SECRET: &[u8] = b"5ec2e7a11ce0ffee";
const PIN: &[u8] = b"pinQ7xZk";

static ARMED: AtomicBool = AtomicBool::new(false);
static FREED_WITH_SECRET: AtomicUsize = AtomicUsize::new(0);
static FREED_WITH_PIN: AtomicUsize = AtomicUsize::new(0);

struct ScanningAllocator;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// SAFETY: every call is forwarded to the system allocator unchanged; `dealloc` only reads the
// block it is about to free, which is still valid at that point.
unsafe impl GlobalAlloc for ScanningAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if contains(block, SECRET) {
                FREED_WITH_SECRET.fetch_add(1, Ordering::Relaxed);
            }
            if contains(block, PIN) {
                FREED_WITH_PIN.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: ScanningAllocator = ScanningAllocator;

fn config_text() -> String {
    format!(
        "[state]\nbackend = \"memory\"\n[users.alice]\nsecret = \"{}\"\npin = \"{}\"\n",
        std::str::from_utf8(SECRET).unwrap(),
        std::str::from_utf8(PIN).unwrap()
    )
}

/// Runs `body` with the scanner armed and returns (blocks with the secret, blocks with the PIN).
fn freed_secrets(body: impl FnOnce()) -> (usize, usize) {
    FREED_WITH_SECRET.store(0, Ordering::SeqCst);
    FREED_WITH_PIN.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    body();
    ARMED.store(false, Ordering::SeqCst);
    (
        FREED_WITH_SECRET.load(Ordering::SeqCst),
        FREED_WITH_PIN.load(Ordering::SeqCst),
    )
}

// One test function: the allocator is global, so phases must not run in parallel.
#[test]
fn secrets_and_pins_are_wiped_when_dropped() {
    // The scanner itself works: a plain String holding the secret is caught.
    let (s, _) = freed_secrets(|| drop(String::from_utf8(SECRET.to_vec()).unwrap()));
    assert_eq!(s, 1, "the scanning allocator must see an unwiped block");

    let dir = std::env::temp_dir().join(format!("motp-wipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("motp.toml");
    std::fs::write(&path, config_text()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Loading and dropping a config (file text, parser values, user table).
    let (s, p) = freed_secrets(|| {
        let config = motp::config::Config::load(&path).unwrap();
        assert_eq!(config.users.len(), 1);
        drop(config);
    });
    assert_eq!(
        (s, p),
        (0, 0),
        "config load/drop freed blocks holding the secret / the PIN"
    );

    // The same through the `toml` path, which `Config::parse` takes for files its fast path
    // does not read (here: a quoted table name).
    let quoted = config_text().replace("[users.alice]", "[users.\"alice\"]");
    let (s, p) = freed_secrets(|| {
        let config = motp::config::Config::parse(&path, &quoted).unwrap();
        assert_eq!(config.users.len(), 1);
        drop(config);
    });
    assert_eq!(
        (s, p),
        (0, 0),
        "config parse (toml path)/drop freed blocks holding the secret / the PIN"
    );

    // A whole plugin instance deciding logins, including an SCRV1 password, then closed.
    let (s, p) = freed_secrets(|| {
        let plugin = motp::plugin::Plugin::open(&path, Arc::new(|_, _: &str| {})).unwrap();
        let code = motp::engine::code_at_time(
            std::str::from_utf8(SECRET).unwrap(),
            std::str::from_utf8(PIN).unwrap(),
            motp::clock::now(),
        )
        .to_hex();
        let scrv1 = format!("SCRV1:cGFzcw==:{}", base64_of(code.as_bytes()));
        let env = motp::env::AuthEnv {
            username: Some(b"alice"),
            password: Some(scrv1.as_bytes()),
            common_name: Some(b"alice"),
            ..Default::default()
        };
        assert_eq!(
            plugin.auth_user_pass_verify(&env),
            motp::plugin::Answer::Accept
        );
        drop(plugin);
    });
    assert_eq!(
        (s, p),
        (0, 0),
        "plugin open/auth/close freed blocks holding the secret / the PIN"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
