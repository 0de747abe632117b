//! A test certificate authority made for each run with the `openssl` command (Debian's
//! openssl package): a self-signed CA and leaf certificates it signs, each with one DNS
//! name as CommonName and subjectAltName, written as PEM files into a temp directory
//! (world-readable, so that Postfix's and Tern's daemons can read them after dropping
//! privileges). Test-only; the keys protect nothing.
//!
//! Without `openssl`, [`TestCa::new`] returns an error and the tests that need it fail,
//! never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The CommonName of the test CA (Postfix logs it as `issuer_CN`).
pub const CA_CN: &str = "Tern Test CA";

/// A test CA in a temp directory; removed on drop.
pub struct TestCa {
    dir: tempfile::TempDir,
}

/// One leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// Makes the CA (`ca.pem`, `ca.key`): an EC P-256 key, valid for two days.
    pub fn new() -> Result<TestCa, String> {
        let dir = tempfile::Builder::new()
            .prefix("testca.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        set_mode(dir.path(), 0o755)?;
        let ca = TestCa { dir };
        let subj = format!("/CN={CA_CN}");
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        Ok(ca)
    }

    /// The CA certificate (the value for smtp_tls_CAfile).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf for DNS name `name` signed by this CA, usable by servers and clients
    /// (`NAME.pem`, `NAME.key`).
    pub fn leaf(&self, name: &str) -> Result<Leaf, String> {
        self.issue(name, true)
    }

    /// A self-signed leaf for `name` (not issued by this CA): `self-NAME.pem`.
    pub fn self_signed(&self, name: &str) -> Result<Leaf, String> {
        self.issue(name, false)
    }

    fn issue(&self, name: &str, by_ca: bool) -> Result<Leaf, String> {
        let base = if by_ca {
            name.to_owned()
        } else {
            format!("self-{name}")
        };
        let (key, csr, pem, ext) = (
            format!("{base}.key"),
            format!("{base}.csr"),
            format!("{base}.pem"),
            format!("{base}.ext"),
        );
        std::fs::write(
            self.dir.path().join(&ext),
            format!(
                "subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let subj = format!("/CN={name}");
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ])?;
        let mut args = vec!["x509", "-req", "-in", &csr, "-out", &pem, "-days", "2"];
        args.extend(["-extfile", &ext]);
        if by_ca {
            args.extend(["-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial"]);
        } else {
            args.extend(["-key", &key, "-set_serial"]);
        }
        // A serial of its own for each leaf (no serial file to share).
        let serial = format!(
            "{}",
            1000 + self.dir.path().read_dir().map_or(0, Iterator::count)
        );
        args.push(&serial);
        self.openssl(&args)?;
        for f in [&key, &pem] {
            set_mode(&self.dir.path().join(f), 0o644)?;
        }
        Ok(Leaf {
            cert: self.dir.path().join(pem),
            key: self.dir.path().join(key),
        })
    }

    /// The SHA-256 fingerprint of a certificate as Postfix prints and matches it
    /// (smtpd_tls_fingerprint_digest = sha256): `AB:CD:...`, upper case.
    pub fn fingerprint_sha256(&self, cert: &Path) -> Result<String, String> {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert)
            .output()
            .map_err(|e| format!("openssl is needed (Debian's openssl): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // `sha256 Fingerprint=AB:CD:...`
        text.trim()
            .split_once('=')
            .map(|(_, fp)| fp.to_owned())
            .ok_or_else(|| format!("openssl x509 -fingerprint: {text}"))
    }

    fn openssl(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("openssl is needed (Debian's openssl): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_verifies_against_the_ca() {
        let ca = TestCa::new().expect("ca");
        let leaf = ca.leaf("mx.tls.test").expect("leaf");
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca.ca_file())
            .arg(&leaf.cert)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "{out:?}");
        let own = ca.self_signed("mx.tls.test").expect("self-signed");
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca.ca_file())
            .arg(&own.cert)
            .output()
            .expect("openssl");
        assert!(!out.status.success(), "{out:?}");
    }
}
