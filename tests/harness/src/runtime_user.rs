//! The runtime user as an attacker: OpenVPN runs as `nobody` after start, so whatever nobody can
//! write (the state directory) is hostile input to root. [`Racer`] plays that attacker, and
//! [`Victims`] are the root files it aims at.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::openvpn::TempDir;

pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

/// Panics unless the process runs as root (as OpenVPN starts, and as the suite runs).
pub fn require_root() {
    assert_eq!(
        motp::os::effective_uid(),
        0,
        "this test runs as root, as OpenVPN starts (run ./test.sh as root)"
    );
}

/// Root's files that the racer points its links at, with what they must still be at the end.
pub struct Victims {
    pub dir: PathBuf,
    files: Vec<(PathBuf, Vec<u8>, u32, u32, u32)>,
}

impl Victims {
    /// Two files of root's (modes 0640 and 0644) in a new root-owned `dir`.
    pub fn create(dir: PathBuf) -> Victims {
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let mut files = Vec::new();
        for (name, mode) in [("shadow-like", 0o640), ("library-like", 0o644)] {
            let path = dir.join(name);
            let content = format!("precious {name} content\n").into_bytes();
            fs::write(&path, &content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            files.push((path, content, 0, 0, mode));
        }
        Victims { dir, files }
    }

    /// Panics unless every file keeps its content, owner and mode and `dir` holds nothing
    /// else.
    pub fn assert_untouched(&self) {
        for (path, content, uid, gid, mode) in &self.files {
            let meta = fs::symlink_metadata(path).unwrap();
            assert_eq!(
                &fs::read(path).unwrap(),
                content,
                "{} content",
                path.display()
            );
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (*uid, *gid, *mode),
                "{} owner or mode",
                path.display()
            );
        }
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["library-like", "shadow-like"],
            "a file was created in root's directory through a dangling link"
        );
    }
}

/// A process running as nobody that swaps the state directory's names for symlinks to root's
/// files (and dangling ones into root's directory) in bursts of a fifth of a second, for at most two minutes,
/// and plants links at the write-probe names of the coming PIDs ([`PROBE_PLANTER`]).
pub struct Racer(Child);

impl Racer {
    pub fn start(state: &Path, victims: &Victims) -> Racer {
        let script = r#"
            perl -e "$PROBES" &
            end=$(( $(date +%s) + 120 ))
            i=0
            while [ "$(date +%s)" -lt "$end" ]; do
                for n in motp-state.db motp-state.db-wal motp-state.db-shm motp-state.db-journal; do
                    case $((i % 3)) in
                        0) ln -sfn "$V/shadow-like" "$S/$n.t" && mv -Tf "$S/$n.t" "$S/$n" ;;
                        1) ln -sfn "$V/new-$n" "$S/$n.t" && mv -Tf "$S/$n.t" "$S/$n" ;;
                        2) ln -sfn "$V/library-like" "$S/$n.t" && mv -Tf "$S/$n.t" "$S/$n" ;;
                    esac
                done 2>/dev/null
                i=$((i + 1))
                [ $((i % 50)) -eq 0 ] && sleep 0.2
            done
        "#;
        // A process group of its own, so that stopping it stops the `ln`/`mv` in flight too:
        // an orphaned `mv` finishing after the test cleaned the directory would plant one more
        // link.
        let child = Command::new("setpriv")
            .process_group(0)
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                "sh",
                "-c",
                script,
            ])
            .env("S", state)
            .env("V", &victims.dir)
            .env("PROBES", PROBE_PLANTER)
            .env("HOST_PID", std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv (util-linux) runs the racer as nobody");
        Racer(child)
    }
}

/// The racer's second process (Perl, so that planting costs no fork and the PIDs it aims at
/// are not used up by its own children): links at the write-probe names of the PIDs the next
/// processes will get (`/proc/sys/kernel/ns_last_pid` + 1 to + 64) and of the process that
/// started the racer (it opens the plugin in-process too): the old scheme
/// `.motp-write-test-<pid>` and the current `.motp-write-test-<pid>-<unix time>-<attempt>` for
/// this second and the next, attempts 0 to 3 (all 16 would only make the open fail, closed).
/// Each points at a root file or dangles into root's directory; the names of PIDs gone by are
/// removed, so the directory stays small.
const PROBE_PLANTER: &str = r#"
    my ($s, $v) = ($ENV{S}, $ENV{V});
    my @targets = ("$v/shadow-like", "$v/library-like", "$v/new-probe");
    my ($end, $i, %planted) = (time + 120, 0);
    while (time < $end) {
        open(my $f, "<", "/proc/sys/kernel/ns_last_pid") or last;
        my $last = <$f>;
        close $f;
        chomp $last;
        my $t = time;
        my %now;
        for my $pid ($ENV{HOST_PID}, $last + 1 .. $last + 64) {
            my @names = (".motp-write-test-$pid");
            for my $at ($t, $t + 1) {
                push @names, map { ".motp-write-test-$pid-$at-$_" } 0 .. 3;
            }
            for my $name (@names) {
                my $target = $targets[$i++ % 3];
                symlink($target, "$s/$name.t") and rename("$s/$name.t", "$s/$name");
                $now{$name} = 1;
            }
        }
        unlink("$s/$_") for grep { !$now{$_} } keys %planted;
        %planted = %now;
        select(undef, undef, undef, 0.01);
    }
"#;

impl Drop for Racer {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
        // SIGKILL is asynchronous: wait until no live member of the group is left.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while live_members_of_group(group.as_raw()) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the racer's processes outlived SIGKILL"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Processes of process group `pgid` that are not zombies (a zombie runs no code).
fn live_members_of_group(pgid: i32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let Some(after_comm) = stat.rsplit_once(") ").map(|(_, rest)| rest) else {
                return false;
            };
            let mut fields = after_comm.split(' ');
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
            pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
        })
        .count()
}

/// A temp tree as a real server has it: root's files to aim at (`victims`), a state directory
/// of nobody's (`state`, 0700), and a motp.toml of root's (0640, group nogroup) naming it with
/// the given user tables.
pub struct Hostile {
    _dir: TempDir,
    pub base: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub victims: Victims,
}

impl Hostile {
    pub fn create(label: &str, users: &str) -> Hostile {
        require_root();
        let dir = TempDir::new(label);
        let base = dir.path().to_owned();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let victims = Victims::create(base.join("root-files"));
        let state = base.join("state");
        nobody_dir(&state);
        let config = base.join("motp.toml");
        fs::write(
            &config,
            format!("[state]\ndir = \"{}\"\n{users}", state.display()),
        )
        .unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&config, Some(0), Some(NOGROUP)).unwrap();
        Hostile {
            _dir: dir,
            base,
            state,
            config,
            victims,
        }
    }
}

/// Creates `dir` 0700, owned by nobody:nogroup.
pub fn nobody_dir(dir: &Path) {
    fs::create_dir(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOGROUP)).unwrap();
}
