//! A throw-away PKI for OpenVPN: a CA, server and client certificates, a tls-crypt key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;

/// A CA, a server certificate, one client certificate per name, and a tls-crypt key.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// EC P-256 keys: the whole PKI takes well under a second.
    pub fn create(dir: &Path, clients: &[&str]) -> Pki {
        let dir = dir.join("pki");
        fs::create_dir_all(&dir).expect("create pki dir");
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(&dir));
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=motp-test-ca",
            "-out",
            "ca.crt",
        ]);
        let mut names = vec![("server", true)];
        names.extend(clients.iter().map(|c| (*c, false)));
        for (name, is_server) in names {
            let ext = if is_server {
                "extendedKeyUsage=serverAuth"
            } else {
                "extendedKeyUsage=clientAuth"
            };
            fs::write(
                dir.join(format!("{name}.ext")),
                format!("{ext}\nkeyUsage=digitalSignature\n"),
            )
            .expect("write ext");
            openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{name}.key"),
            ]);
            openssl(&[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={name}"),
                "-out",
                &format!("{name}.csr"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ]);
        }
        run(Command::new("openvpn")
            .args(["--genkey", "secret"])
            .arg(dir.join("tls-crypt.key")));
        for entry in fs::read_dir(&dir).expect("read pki dir") {
            let path = entry.expect("entry").path();
            let mode = if path.extension().is_some_and(|e| e == "key") {
                0o600
            } else {
                0o644
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod pki file");
        }
        Pki { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}
